"""Flow parameters (flows/parameters.py): titles, descriptions and validation that the Prefect UI form and the
server's schema check use, declared once in each flow's signature. A bad value is refused before a run starts,
with a message naming the parameter: by check_parameters (against the flow's own signature), by the flow itself
(a direct call), and by a real Prefect server (enforce_parameter_schema) when a run of a deployment is created, as
the UI and `prefect deployment run` do. The CLI's options are derived from the same signatures."""

from __future__ import annotations

import pytest

from pydantic import BaseModel

from directus_ops.errors import ConfigError
from flows import parameters as p
from prefect_server import Server

PASSWORD_REFUSED = ("the URL has a password in it (parameters are stored with the run): give it without the "
                    "password and set DIRECTUS_OPS_DATABASE_PASSWORD on the worker")


def every_flow() -> dict:
    """Every flow, by name (what its deployments are keyed by)."""
    from deployments.serve import flows

    return {flow.name: flow for flow in flows()}


@pytest.mark.parametrize("flow_name, given, problem", [
    ("backup", {"project_dir": "/srv/d", "repo": "http://example.com/x"}, "repo.url: 'http://example.com/x' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": "s3://B"}, "repo.url: 's3://B' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "s3://B"}}, "repo.url: 's3://B' is not valid here"),
    ("backup", {"project_dir": "", "repo": "/r"}, "project_dir: String should have at least 1 character"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "workers": 0}, "workers: Input should be greater than or equal to 1"),
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "/r", "secret_block": "My Keys"}},
     "repo.secret_block: 'My Keys' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "s3://b-1/x", "endpoint": "s3.example.com"}},
     "repo.endpoint: 's3.example.com' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "/r", "secret_key": "x"}},
     "repo.secret_key: is not a parameter of this flow"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "s3_secret_key": "x"}, "s3_secret_key: is not a parameter of this flow"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "database_scope": "half"},
     "database_scope: Input should be 'entire', 'system', 'project' or 'none'"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "project_wait_seconds": -1},
     "project_wait_seconds: Input should be greater than or equal to 0"),
    ("backup", {"project_dir": "/srv/d"}, "repo: Field required"),
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
    ("delete", {"project_dir": "/srv/shop", "confirm": "shop", "repo": "ftp://x"}, "repo.url: 'ftp://x' is not valid here"),
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
    """check_parameters validates against the flow's own signature: what a direct call of the flow refuses."""
    from prefect.exceptions import ParameterTypeError, SignatureMismatchError

    flow = every_flow()[flow_name]
    with pytest.raises(ConfigError) as caught:
        p.check_parameters(flow, given)
    # (A URL with a password gets PASSWORD_REFUSED: the password is not repeated.)
    assert str(caught.value) == f"{flow_name}: parameter {problem}; see the field's description"
    with pytest.raises((ParameterTypeError, SignatureMismatchError)):  # (the latter: a name the flow lacks)
        flow.validate_parameters(given)


def _as_given(parameters: dict) -> dict:
    """Parameters as a run stores them (JSON): a repository as its fields, a plain string as its url."""
    return {name: value.model_dump(exclude_unset=True) if isinstance(value, BaseModel)
            else {"url": value} if name == "repo" and isinstance(value, str) else value
            for name, value in parameters.items()}


@pytest.mark.parametrize("flow_name, given", [
    ("backup", {"project_dir": "/srv/d", "repo": "/backups/d"}),  # a repository given by its URL alone
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "s3://agency-backups/d", "secret_block": "agency-s3",
                                                  "passphrase_secret_block": "agency-passphrase"},
                "encrypt": True, "project_wait_seconds": 0}),
    ("backup", {"project_dir": "/srv/d", "repo": {"url": "s3://agency-backups/d", "endpoint": "http://127.0.0.1:9000",
                                                  "region": "eu-west-1"}}),
    ("verify", {"repo": {"url": "relative/repo"}, "read_data_percent": 10, "restore_drill": True,
                "scratch_database_url": "postgresql://drill@127.0.0.1:5432/drill_tmp"}),
    ("verify", {"repo": {"url": "/r"}, "scratch_database_url": "sqlite:////tmp/drill.db"}),
    ("forget", {"repo": {"url": "/r"}, "keep_last": 7, "keep_daily": 14, "prune": True, "lock_wait_seconds": 3600}),
    ("restore", {"repo": {"url": "/r"}, "project_dir": "/p", "snapshot_id": "20261126T0743",
                 "storage": {"local": "/srv/u"}}),
    ("restore", {"repo": {"url": "/r"}, "project_dir": "/p", "database_url": "mysql://directus@db:3306/site",
                 "storage": {"s3": "s3://bucket/files?endpoint=http://127.0.0.1:9000&region=x"}}),
    ("upgrade", {"repo": {"url": "/r"}, "project_dir": "/p", "to": "11.1.0", "rehearse": True,
                 "url": "http://127.0.0.1:8055", "stop_command": "systemctl stop directus"}),
    ("upgrade", {"repo": {"url": "/r"}, "project_dir": "/p", "to": "12.4.0", "accept_license_change": True}),
    ("rehearse-upgrade", {"repo": {"url": "/r"}, "project_dir": "/p", "to": "11.1.0", "raise_on_failure": True}),
    ("downgrade", {"repo": {"url": "/r"}, "project_dir": "/p", "to": "10.13.4", "accept_data_loss": True}),
    ("move", {"project_dir": "/p", "to_database": "postgresql://directus@db/new", "cutover": True, "app_timeout": 60,
              "to_storage": {"local": "s3files:s3://bucket/uploads?endpoint=http://h:9000", "other": "/srv/other"}}),
    ("delete", {"project_dir": "/srv/shop", "confirm": "shop", "repo": {"url": "/backups/shop"},
                "backup_database": "system"}),
    ("v8_migrate", {"v8_database_url": "mysql://v8@127.0.0.1:3306/v8", "v8_storage": "s3://old-site/uploads/_",
                    "project_dir": "/srv/new", "skip_collections": ["logs"], "v8_timezone": "Europe/Berlin",
                    "temporary_password_env": "V8_TEMP_PASSWORD"}),
])
def test_good_parameters_pass(flow_name: str, given: dict) -> None:
    flow = every_flow()[flow_name]
    assert _as_given(p.check_parameters(flow, given)) == _as_given(given)
    flow.validate_parameters(given)  # the flow's own check (a direct call) agrees


def test_each_bound_commands_options_are_its_flows_parameters() -> None:
    """A command bound to a flow offers exactly the flow's parameters (but those its binding omits), each with the
    field's description as its help and the flow's default: the CLI declares none of them again. A repository
    parameter is the five options, one per field (--repo for its url)."""
    import importlib

    from directus_ops import cli
    from directus_ops.cli_binding import DATABASE_URL_PARAMETERS, NO_PASSWORD_HERE, PASSWORD_MOVES, REPOSITORY_OPTIONS

    root = cli.command()  # every command built
    assert cli._FLOW_COMMANDS
    for path, spec in cli._FLOW_COMMANDS.items():
        command = root
        for word in path.split():
            command = command.commands[word]  # type: ignore[attr-defined]
        module, attribute = spec.flow.split(":")
        flow = getattr(importlib.import_module(module), attribute)
        schema = flow.parameters
        expected: dict[str, tuple[str, object]] = {}  # option's parameter name -> (help, default)
        for name, field in schema.properties.items():
            if name in spec.binding.omit:
                continue
            default = spec.binding.defaults.get(name, field.get("default"))
            refs = [field.get("$ref", "")] + [option.get("$ref", "") for option in field.get("anyOf", [])]
            if any(ref.endswith("/RepositoryOptions") for ref in refs):  # required, or optional (anyOf null)
                fields = schema.definitions["RepositoryOptions"]["properties"]
                for key, (cli_name, _, _) in REPOSITORY_OPTIONS.items():
                    help_text = (field["description"].split(": url", 1)[0] + ": a local directory or s3://bucket/prefix."
                                 if key == "url" else fields[key]["description"])
                    expected[cli_name] = (help_text, None)
                continue
            help_text = field["description"]
            if name in DATABASE_URL_PARAMETERS:
                help_text = help_text.replace(NO_PASSWORD_HERE, PASSWORD_MOVES)
            expected[name] = (help_text, default)
        own = {option.name for option in spec.binding.extra}  # the command's, no flow parameter
        offered = {param.name: (param.help, param.default) for param in command.params  # type: ignore[attr-defined]
                   if param.name != "help" and param.name not in own}
        assert offered == expected, path
        required = {param.name for param in command.params if param.required}  # type: ignore[attr-defined]
        # (A required repository is a required --repo: its url.)
        assert required == {name for name in schema.required
                            if name not in spec.binding.omit and name not in spec.binding.defaults}, path
        assert all((param.param_type_name == "argument") == (param.name in spec.binding.positional)
                   for param in command.params), path  # type: ignore[attr-defined]
    # The commands that are no flow's but take a repository (snapshots, repository upgrade) take the same five.
    assert cli._REPOSITORY_COMMANDS
    for path in cli._REPOSITORY_COMMANDS:
        command = root
        for word in path.split():
            command = command.commands[word]  # type: ignore[attr-defined]
        offered = {param.name: param.help for param in command.params}  # type: ignore[attr-defined]
        for key, (cli_name, _, _) in REPOSITORY_OPTIONS.items():
            assert offered[cli_name] == (p.RepositoryOptions.model_fields[key].description if key != "url"
                                         else "Where the snapshots are: a local directory or s3://bucket/prefix."), path


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
        for definition in flow.parameters.definitions.values():  # nor a field of a parameter (the repository's)
            for field in definition.get("properties", {}):
                if any(word in field for word in ("password", "secret", "token", "key")):
                    assert field.endswith("secret_block"), field
                    assert len(definition["properties"][field].get("description", "")) > 10, field


def test_forms_carry_descriptions_and_limits() -> None:
    flows = every_flow()
    keep_daily = flows["forget"].parameters.properties["keep_daily"]
    assert keep_daily["minimum"] == 0 and "days" in keep_daily["description"] and keep_daily["title"] == "Keep days"
    percent = flows["verify"].parameters.properties["read_data_percent"]
    assert percent["anyOf"][0] == {"exclusiveMinimum": 0, "maximum": 100, "type": "number"}
    assert "re-read" in percent["description"]
    assert "s3://" in flows["verify"].parameters.definitions["RepositoryOptions"]["properties"]["url"]["pattern"]
    assert flows["verify"].parameters.properties["repo"]["title"] == "Repository"
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
    ("backup", {"repo": {"url": "http://example.com/backups"}}, "repo.url"),
    ("backup", {"repo": {"url": "/backups/shop", "secret_block": "My Keys"}}, "repo.secret_block"),
    ("forget", {"repo": "/backups/shop"}, "repo"),  # a form sends the object
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
        ("backup", {"repo": {"url": "s3://agency-backups/shop", "secret_block": "agency-s3"},
                    "project_wait_seconds": 0}),
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
    assert {name for name, _ in good} == set(every_flow())
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
