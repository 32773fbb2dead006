"""Flow parameters (flows/parameters.py): titles, descriptions and validation that the Prefect UI form and the
server's schema check use. A bad value is refused before a run starts, with a message naming the parameter."""

from __future__ import annotations

import pytest

from directus_ops.errors import ConfigError
from flows import parameters as p


@pytest.mark.parametrize("flow_name, given, problem", [
    ("backup", {"project_dir": "/srv/d", "repo": "http://example.com/x"}, "repo: 'http://example.com/x' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": "s3://B"}, "repo: 's3://B' is not valid here"),
    ("backup", {"project_dir": "", "repo": "/r"}, "project_dir: String should have at least 1 character"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "workers": 0}, "workers: Input should be greater than or equal to 1"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "repo_secret_block": "My Keys"}, "repo_secret_block: 'My Keys' is not valid here"),
    ("backup", {"project_dir": "/srv/d", "repo": "/r", "s3_secret_key": "x"}, "s3_secret_key: is not a parameter of this flow"),
    ("forget", {"repo": "/r", "keep_daily": -1}, "keep_daily: Input should be greater than or equal to 0"),
    ("verify", {"repo": "/r", "read_data_percent": 150}, "read_data_percent: Input should be less than or equal to 100"),
    ("verify", {"repo": "/r", "read_data_percent": 0}, "read_data_percent: Input should be greater than 0"),
    ("verify", {"repo": "/r", "scratch_database_url": "postgresql://u:hunter2@db/x"},
     "scratch_database_url: 'postgresql://u:hunter2@db/x' is not valid here"),
    ("restore", {"repo": "/r", "project_dir": "/p", "snapshot_id": "latest; rm"}, "snapshot_id: 'latest; rm' is not valid here"),
    ("restore", {"repo": "/r", "project_dir": "/p", "database_url": "mysql://root:pw@db/x"},
     "database_url: 'mysql://root:pw@db/x' is not valid here"),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "to": "latest"}, "to: 'latest' is not valid here"),
    ("downgrade", {"repo": "/r", "project_dir": "/p"}, "to: Field required"),
])
def test_a_bad_parameter_is_refused_with_one_line_naming_it(flow_name: str, given: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        p.check_parameters(flow_name, given)
    assert str(caught.value) == f"{flow_name}: parameter {problem}; see the field's description"


@pytest.mark.parametrize("flow_name, given", [
    ("backup", {"project_dir": "/srv/d", "repo": "/backups/d"}),
    ("backup", {"project_dir": "/srv/d", "repo": "s3://agency-backups/d", "repo_secret_block": "agency-s3",
                "passphrase_secret_block": "agency-passphrase", "encrypt": True}),
    ("verify", {"repo": "relative/repo", "read_data_percent": 10, "restore_drill": True,
                "scratch_database_url": "postgresql://drill@127.0.0.1:5432/drill_tmp"}),
    ("verify", {"repo": "/r", "scratch_database_url": "sqlite:////tmp/drill.db"}),
    ("forget", {"repo": "/r", "keep_last": 7, "keep_daily": 14, "prune": True, "lock_wait_seconds": 3600}),
    ("restore", {"repo": "/r", "project_dir": "/p", "snapshot_id": "20261126T0743", "storage": {"local": "/srv/u"}}),
    ("upgrade", {"repo": "/r", "project_dir": "/p", "to": "11.1.0", "rehearse": True}),
    ("downgrade", {"repo": "/r", "project_dir": "/p", "to": "10.13.4", "accept_data_loss": True}),
])
def test_good_parameters_pass(flow_name: str, given: dict) -> None:
    assert p.check_parameters(flow_name, given).model_dump(exclude_unset=True) == given


def test_the_models_cover_every_parameter_of_their_flows() -> None:
    """A model that drifts from its flow (a parameter added or renamed) fails here: the lead wires them after
    the merge."""
    from directus_ops.project_lock import WAIT_PARAMETER
    from flows.backup import backup
    from flows.downgrade import downgrade_directus
    from flows.forget import forget
    from flows.restore import restore
    from flows.upgrade import upgrade_directus
    from flows.verify import verify

    for name, flow in [("backup", backup), ("restore", restore), ("verify", verify), ("forget", forget),
                       ("upgrade", upgrade_directus), ("downgrade", downgrade_directus)]:
        assert set(p.MODELS[name].model_fields) == set(flow.parameters.properties) - {WAIT_PARAMETER}, name


def test_verify_and_forget_forms_carry_descriptions_and_limits() -> None:
    from flows.forget import forget
    from flows.verify import verify

    keep_daily = forget.parameters.properties["keep_daily"]
    assert keep_daily["minimum"] == 0 and "days" in keep_daily["description"]
    percent = verify.parameters.properties["read_data_percent"]
    assert percent["anyOf"][0] == {"exclusiveMinimum": 0, "maximum": 100, "type": "number"}
    assert "re-read" in percent["description"]
    assert "s3://" in verify.parameters.properties["repo"]["pattern"]
    assert "No password here" in verify.parameters.properties["scratch_database_url"]["description"]
    # The flows themselves refuse a bad value before any task runs.
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="keep_daily"):
        forget.validate_parameters({"repo": "/r", "keep_daily": -1})
    with pytest.raises(ParameterTypeError, match="read_data_percent"):
        verify.validate_parameters({"repo": "/r", "read_data_percent": 101})
