"""Flow parameters (flows/parameters.py): titles, descriptions and validation that the Prefect UI form and the
server's schema check use. A bad value is refused before a run starts, with a message naming the parameter:
by check_parameters, by the flow itself (a direct call), and by a real Prefect server (enforce_parameter_schema)
when a run of a deployment is created, as the UI and `prefect deployment run` do."""

from __future__ import annotations

import pytest

from directus_ops.errors import ConfigError
from flows import parameters as p
from prefect_server import Server

PASSWORD_REFUSED = ("the URL has a password in it (parameters are stored with the run): give it without the "
                    "password and set DIRECTUS_OPS_DATABASE_PASSWORD on the worker")


def every_flow() -> dict:
    """Every flow, by name (what its deployments and MODELS are keyed by)."""
    from deployments.serve import flows

    return {flow.name: flow for flow in flows()}


@pytest.mark.parametrize("flow_name, given, problem", [
    ("backup", {"project_dir": "/srv/d", "repo": "http://example.com/x"}, "repo: 'http://example.com/x' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": "s3://B"}, "repo: 's3://B' is not valid here"),
    ("backup", {"project_dir": "", "repo": "/r"}, "project_dir: String should have at least 1 character"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "workers": 0}, "workers: Input should be greater than or equal to 1"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "repo_secret_block": "My Keys"}, "repo_secret_block: 'My Keys' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "s3_secret_key": "x"}, "s3_secret_key: is not a parameter of this flow"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "database_scope": "half"},
     "database_scope: Input should be 'entire', 'system', 'project' or 'none'"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "project_wait_seconds": -1},
     "project_wait_seconds: Input should be greater than or equal to 0"),
    ("forget", {"repo": "/r", "keep_daily": -1}, "keep_daily: Input should be greater than or equal to 0"),
    ("forget", {"repo": "/r", "project": "a/b"}, "project: 'a/b' is not valid here"),
    ("verify", {"repo": "/r", "read_data_percent": 150}, "read_data_percent: Input should be less than or equal to 100"),
    ("verify", {"repo": "/r", "read_data_percent": 0}, "read_data_percent: Input should be greater than 0"),
    ("verify", {"repo": "/r", "scratch_database_url": "postgresql://u:hunter2@db/x"}, f"scratch_database_url: {PASSWORD_REFUSED}"),
    ("restore", {"repo": "/r", "project_dir": "/p", "snapshot_id": "latest; rm"}, "snapshot_id: 'latest; rm' is not valid here"),
    ("restore", {"repo": "/r", "project_dir": "/p", "snapshot_id": "all"}, "snapshot_id: 'all' is not valid here"),
    ("restore", {"repo": "/r", "project_dir": "/p", "database_url": "mysql://root:pw@db/x"}, f"database_url: {PASSWORD_REFUSED}"),
    ("restore", {"repo": "/r", "project_dir": "/p", "storage": {"local": "ftp://x/y"}}, "storage.local: 'ftp://x/y' is not valid here"),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "to": "latest"}, "to: 'latest' is not valid here"),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "url": "localhost:8055"}, "url: 'localhost:8055' is not valid here"),
    ("rehearse-upgrade", {"repo": "/r", "project_dir": "/p", "to": "11.1"}, "to: '11.1' is not valid here"),
    ("rehearse-upgrade", {"repo": "/r", "project_dir": "/p", "scratch_database_url": "postgres://a:b@h/db"},
     f"scratch_database_url: {PASSWORD_REFUSED}"),
    ("downgrade", {"repo": "/r", "project_dir": "/p"}, "to: Field required"),
    ("downgrade", {"repo": "/r", "project_dir": "/p", "to": "v10.13.4"}, "to: 'v10.13.4' is not valid here"),
    ("move", {"project_dir": "/p", "to_database": "postgresql://u:pw@h:5432/db"}, f"to_database: {PASSWORD_REFUSED}"),
    ("move", {"project_dir": "/p", "app_timeout": -5}, "app_timeout: Input should be greater than 0"),
    ("move", {"project_dir": "/p", "to_storage": {"local": "s3files:ftp://b/x"}}, "to_storage.local: 's3files:ftp://b/x' is not valid here"),
    ("delete", {"project_dir": "/srv/shop", "dry_run": True}, "confirm: Field required"),
    ("delete", {"project_dir": "/srv/shop", "confirm": ""}, "confirm: String should have at least 1 character"),
    ("delete", {"project_dir": "/srv/shop", "confirm": "shop", "repo": "ftp://x"}, "repo: 'ftp://x' is not valid here"),
    ("delete", {"project_dir": "/srv/shop", "confirm": "shop", "backup_database": "half"},
     "backup_database: Input should be 'entire', 'system', 'project' or 'none'"),
    ("v8_migrate", {"v8_database_url": "mysql://root:secret@db/v8", "v8_storage": "/u", "project_dir": "/p"},
     f"v8_database_url: {PASSWORD_REFUSED}"),
    ("v8_migrate", {"v8_database_url": "postgresql://u@db/v8", "v8_storage": "/u", "project_dir": "/p"},
     "v8_database_url: 'postgresql://u@db/v8' is not valid here"),
    ("v8_migrate", {"v8_database_url": "mysql://u@db/v8", "v8_storage": "/u", "project_dir": "/p",
                    "temporary_password_env": "hunter2!"}, "temporary_password_env: 'hunter2!' is not valid here"),
])
def test_a_bad_parameter_is_refused_with_one_line_naming_it(flow_name: str, given: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        p.check_parameters(flow_name, given)
    # (A URL with a password gets PASSWORD_REFUSED: the password is not repeated.)
    assert str(caught.value) == f"{flow_name}: parameter {problem}; see the field's description"


@pytest.mark.parametrize("flow_name, given", [
    ("backup", {"project_dir": "/srv/d", "repo": "/backups/d"}),
    ("backup", {"project_dir": "/srv/d", "repo": "s3://agency-backups/d", "repo_secret_block": "agency-s3",
                "passphrase_secret_block": "agency-passphrase", "encrypt": True, "project_wait_seconds": 0}),
    ("verify", {"repo": "relative/repo", "read_data_percent": 10, "restore_drill": True,
                "scratch_database_url": "postgresql://drill@127.0.0.1:5432/drill_tmp"}),
    ("verify", {"repo": "/r", "scratch_database_url": "sqlite:////tmp/drill.db"}),
    ("forget", {"repo": "/r", "keep_last": 7, "keep_daily": 14, "prune": True, "lock_wait_seconds": 3600}),
    ("restore", {"repo": "/r", "project_dir": "/p", "snapshot_id": "20261126T0743", "storage": {"local": "/srv/u"}}),
    ("restore", {"repo": "/r", "project_dir": "/p", "database_url": "mysql://directus@db:3306/site",
                 "storage": {"s3": "s3://bucket/files?endpoint=http://127.0.0.1:9000&region=x"}}),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "to": "11.1.0", "rehearse": True, "url": "http://127.0.0.1:8055",
                 "stop_command": "systemctl stop directus"}),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "to": "12.4.0", "accept_license_change": True}),
    ("rehearse-upgrade", {"repo": "/r", "project_dir": "/p", "to": "11.1.0", "raise_on_failure": True}),
    ("downgrade", {"repo": "/r", "project_dir": "/p", "to": "10.13.4", "accept_data_loss": True}),
    ("move", {"project_dir": "/p", "to_database": "postgresql://directus@db/new", "cutover": True, "app_timeout": 60,
              "to_storage": {"local": "s3files:s3://bucket/uploads?endpoint=http://h:9000", "other": "/srv/other"}}),
    ("delete", {"project_dir": "/srv/shop", "confirm": "shop", "repo": "/backups/shop", "backup_database": "system"}),
    ("v8_migrate", {"v8_database_url": "mysql://v8@127.0.0.1:3306/v8", "v8_storage": "s3://old-site/uploads/_",
                    "project_dir": "/srv/new", "skip_collections": ["logs"], "v8_timezone": "Europe/Berlin",
                    "temporary_password_env": "V8_TEMP_PASSWORD"}),
])
def test_good_parameters_pass(flow_name: str, given: dict) -> None:
    assert p.check_parameters(flow_name, given).model_dump(exclude_unset=True) == given


def _without_position(properties: dict) -> dict:
    return {name: {k: v for k, v in spec.items() if k != "position"} for name, spec in properties.items()}


def test_each_model_is_its_flows_schema() -> None:
    """A model that drifts from its flow (a parameter added, renamed, retyped or given another default) fails
    here: the model's JSON schema equals the flow's parameter schema, field by field."""
    flows = every_flow()
    assert set(p.MODELS) == set(flows)
    for name, flow in flows.items():
        model = p.MODELS[name].model_json_schema()
        assert _without_position(flow.parameters.properties) == model["properties"], name
        assert sorted(flow.parameters.required) == sorted(model.get("required", [])), name


def test_every_parameter_of_every_flow_has_a_title_and_a_description() -> None:
    for name, flow in every_flow().items():
        for parameter, spec in flow.parameters.properties.items():
            assert spec["title"] != parameter and "_" not in spec["title"], (name, parameter, spec["title"])
            assert len(spec.get("description", "")) > 10, (name, parameter)
    # No parameter takes a secret: credentials come from Secret blocks (by name) or the worker's environment.
    for flow in every_flow().values():
        for parameter in flow.parameters.properties:
            if any(word in parameter for word in ("password", "secret", "token", "key")):
                assert parameter.endswith(("_secret_block", "_env")), parameter  # a block's or variable's name


def test_forms_carry_descriptions_and_limits() -> None:
    flows = every_flow()
    keep_daily = flows["forget"].parameters.properties["keep_daily"]
    assert keep_daily["minimum"] == 0 and "days" in keep_daily["description"] and keep_daily["title"] == "Keep days"
    percent = flows["verify"].parameters.properties["read_data_percent"]
    assert percent["anyOf"][0] == {"exclusiveMinimum": 0, "maximum": 100, "type": "number"}
    assert "re-read" in percent["description"]
    assert "s3://" in flows["verify"].parameters.properties["repo"]["pattern"]
    assert "No password here" in flows["verify"].parameters.properties["scratch_database_url"]["description"]
    confirm = flows["delete"].parameters.properties["confirm"]
    assert "confirm" in flows["delete"].parameters.required and confirm["minLength"] == 1
    assert confirm["title"] == "Confirm: the project's name"
    assert flows["downgrade"].parameters.properties["to"]["pattern"] == r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
    assert flows["backup"].parameters.properties["database_scope"]["enum"] == ["entire", "system", "project", "none"]
    wait = flows["backup"].parameters.properties["project_wait_seconds"]
    assert wait["title"] == "Wait for the project (s)" and wait["anyOf"][0]["minimum"] == 0


def test_the_flows_refuse_a_bad_value_before_any_task_runs() -> None:
    from prefect.exceptions import ParameterTypeError

    flows = every_flow()
    for name, parameters, fragment in [
        ("forget", {"repo": "/r", "keep_daily": -1}, "keep_daily"),
        ("verify", {"repo": "/r", "read_data_percent": 101}, "read_data_percent"),
        ("delete", {"project_dir": "/srv/shop", "dry_run": True}, "confirm"),
        ("upgrade", {"project_dir": "/p", "repo": "/r", "to": "next"}, "to"),
        ("restore", {"project_dir": "/p", "repo": "/r", "database_url": "postgresql://u:pw@h/db"}, "database_url"),
    ]:
        with pytest.raises(ParameterTypeError, match=fragment):
            flows[name].validate_parameters(parameters)


# -- a real Prefect server: the schema is enforced when a run is created -------------------------------------------
@pytest.fixture(scope="module")
def server(prefect_server_process: Server) -> Server:
    return prefect_server_process


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every flow deployed as serve.py deploys it (enforce_parameter_schema, defaults filled in); no worker, so
    an accepted run stays scheduled and nothing runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.serve import deployments

    root = tmp_path_factory.mktemp("deployed")
    with temporary_settings({PREFECT_API_URL: server.api}):
        for deployment in deployments(str(root / "shop"), str(root / "repo")):
            deployment.apply()


def _deployment(server: Server, name: str) -> dict:
    return server.deployment(f"{name}/{name}")


def _runs(server: Server, deployment: dict) -> list[dict]:
    """The runs someone asked for: the server's scheduler adds runs of its own to a deployment with a schedule
    (backup, forget, verify-drill), marked auto_scheduled, whenever its loop comes round."""
    runs = server.post("/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}})
    return [run for run in runs if not run["auto_scheduled"]]  # type: ignore[union-attr,index]


BAD_RUNS = [
    ("backup", {"repo": "http://example.com/backups"}, "repo"),
    ("backup", {"workers": 0}, "workers"),
    ("restore", {"project_dir": "/srv/copy", "database_url": "postgresql://directus:hunter2@db/site"}, "database_url"),
    ("verify", {"read_data_percent": 150}, "read_data_percent"),
    ("verify", {"restore_drill": True, "scratch_database_url": "mysql://root:hunter2@db/drill"}, "scratch_database_url"),
    ("forget", {"keep_daily": -1}, "keep_daily"),
    ("forget", {"keep_weekly": "many"}, "keep_weekly"),
    ("upgrade", {"to": "latest"}, "to"),
    ("rehearse-upgrade", {"to": "11.1"}, "to"),
    ("downgrade", {}, "to"),
    ("downgrade", {"to": "ten"}, "to"),
    ("move", {"to_database": "mysql://u:hunter2@db/new"}, "to_database"),
    ("move", {"app_timeout": -1}, "app_timeout"),
    ("delete", {}, "confirm"),
    ("delete", {"confirm": ""}, "confirm"),
    ("delete", {"confirm": "shop", "backup_database": "half"}, "backup_database"),
    ("v8_migrate", {"v8_database_url": "mysql://root:hunter2@db/v8", "v8_storage": "/u"}, "v8_database_url"),
    ("v8_migrate", {"v8_database_url": "mysql://v8@db/v8", "v8_storage": "/u", "v8_timezone": "not a zone"},
     "v8_timezone"),
]


def test_the_server_refuses_bad_parameters_before_a_run_is_created(server: Server, deployed: None) -> None:
    for name, parameters, field in BAD_RUNS:
        deployment = _deployment(server, name)
        assert deployment["enforce_parameter_schema"] is True
        refused = server.request("POST", f"/deployments/{deployment['id']}/create_flow_run",
                                 json={"parameters": parameters})
        assert refused.status_code == 409, (name, parameters, refused.status_code, refused.text)
        detail = refused.json()["detail"]
        # e.g. "Validation failed for field 'keep_daily'. Failure reason: -1 is less than the minimum of 0" (the
        # UI form shows the field's description beside it). A URL with a password is answered to its sender
        # only: no run is created, so it is stored nowhere.
        assert detail.startswith((f"Error creating flow run: Validation failed for field '{field}'. Failure reason: ",
                                  f"Error creating flow run: Validation failed. Failure reason: '{field}' is a "
                                  "required property")), (name, detail)
        assert not _runs(server, deployment), (name, "a run was created")


def test_the_server_accepts_good_parameters(server: Server, deployed: None) -> None:
    good = [
        ("backup", {"repo": "s3://agency-backups/shop", "repo_secret_block": "agency-s3", "project_wait_seconds": 0}),
        ("restore", {"project_dir": "/srv/copy", "database_url": "postgresql://directus@db/site",
                     "storage": {"local": "/srv/copy/uploads"}}),
        ("verify", {"restore_drill": True, "scratch_database_url": "postgresql://drill@db/drill_tmp"}),
        ("forget", {"keep_daily": 30}),
        ("upgrade", {"to": "11.1.0", "url": "http://127.0.0.1:8055"}),
        ("rehearse-upgrade", {"to": "11.1.0", "scratch_database_url": "sqlite:////tmp/rehearsal.db"}),
        ("downgrade", {"to": "10.13.4"}),
        ("move", {"to_database": "mysql://directus@db/new", "to_storage": {"local": "s3files:s3://bucket/uploads"}}),
        ("delete", {"confirm": "shop"}),
        ("v8_migrate", {"v8_database_url": "mysql://v8@db/v8", "v8_storage": "/srv/v8/uploads/_"}),
    ]
    assert {name for name, _ in good} == set(p.MODELS)
    for name, parameters in good:
        deployment = _deployment(server, name)
        created = server.request("POST", f"/deployments/{deployment['id']}/create_flow_run",
                                 json={"parameters": parameters})
        assert created.status_code == 201, (name, created.text)
        run = created.json()
        assert {k: run["parameters"][k] for k in parameters} == parameters
        server.request("DELETE", f"/flow_runs/{run['id']}").raise_for_status()


def test_the_deployed_schemas_carry_titles_and_descriptions(server: Server, deployed: None) -> None:
    flows = every_flow()
    for name, flow in flows.items():
        schema = _deployment(server, name)["parameter_openapi_schema"]
        assert schema["properties"] == flow.parameters.properties, name
        assert all(spec["title"] and spec["description"] for spec in schema["properties"].values()), name
    confirm = _deployment(server, "delete")["parameter_openapi_schema"]["properties"]["confirm"]
    assert "project's name" in confirm["title"] and "nothing is deleted" in confirm["description"]
