"""Apply deployments/automations.yaml to the Prefect server: `directus-ops alerts apply [--notify-block NAME]`.

With a notification block (any of Prefect's: Slack/Teams/custom webhook, email, ...), each automation's
actions become one ``send-notification`` to that block with the subject and body under ``notification:``.
Without one the file's own actions are kept (``do-nothing``: the automation fires, and its firing is seen in
the UI, but nobody is told). Automations of the same names are replaced, so applying again is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from directus_ops.errors import ConfigError

AUTOMATIONS_FILE = Path(__file__).resolve().parent / "automations.yaml"


def load_automations(path: str | Path = AUTOMATIONS_FILE) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"automations file {path}: cannot be read ({exc}); give a YAML file like "
                          "deployments/automations.yaml") from None
    automations = data.get("automations") if isinstance(data, dict) else data
    if not isinstance(automations, list) or not all(isinstance(a, dict) and a.get("name") for a in automations):
        raise ConfigError(f"automations file {path}: expected a list 'automations:' of named automations")
    return automations


def _notification_block_id(client: Any, name: str) -> Any:
    found = [b for b in client.read_block_documents(include_secrets=False) if b.name == name]
    if not found:
        raise ConfigError(f"no block named {name!r} on the Prefect server: create a notification block (UI: Blocks, "
                          "e.g. Slack Webhook or Custom Webhook) with that name, or leave out --notify-block")
    return found[0].id


def apply_automations(path: str | Path = AUTOMATIONS_FILE, notify_block: str | None = None) -> list[tuple[str, Any]]:
    """Create the file's automations (replacing those of the same names); returns (name, id) pairs."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    automations = load_automations(path)
    created = []
    with get_client(sync_client=True) as client:
        block_id = _notification_block_id(client, notify_block) if notify_block else None
        for data in automations:
            data = dict(data)
            notification = data.pop("notification", None) or {}
            if block_id:
                data["actions"] = [{"type": "send-notification", "block_document_id": str(block_id),
                                    "subject": notification.get("subject", data["name"]),
                                    "body": notification.get("body", data.get("description") or data["name"])}]
            try:
                automation = AutomationCore.model_validate(data)
            except Exception as exc:
                raise ConfigError(f"automation {data['name']!r} in {path} is not valid: "
                                  f"{str(exc).splitlines()[0]}; compare with deployments/automations.yaml") from None
            for existing in client.read_automations_by_name(automation.name):
                client.delete_automation(existing.id)
            created.append((automation.name, client.create_automation(automation)))
    return created
