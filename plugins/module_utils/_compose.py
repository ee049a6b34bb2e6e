# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic about compose: which service images a release changes; what ``docker compose up --dry-run`` says it
would change (release_info's drift, compose_switch's plan). Nothing here imports more than ``re``: release_info
uses it without the switch's code."""

import re

# The dry run's words for a container compose would change.
_CHANGE_WORDS = ('Recreate', 'Create', 'Start', 'Remov', 'Stop', 'Restart')
_LINE = re.compile(r'Container\s+(?:[0-9a-f]{12}_)?(?P<name>\S+)\s+(?P<status>[A-Za-z]+)')


def service_images(compose):
    """Map service name -> image of a parsed compose document (empty for none)."""
    if not compose:
        return {}
    if not isinstance(compose, dict):
        raise ValueError(f"a compose document must be a mapping, got {type(compose).__name__}")
    services = compose.get("services") or {}
    if not isinstance(services, dict):
        raise ValueError("'services' of a compose document must be a mapping")
    return {name: (spec or {}).get("image") for name, spec in services.items()}


def image_changes(new, old):
    """List {service, from, to} for every service whose image differs, in the new file's order.

    Services only in the old file are reported with ``to`` None (compose removes them as orphans).
    """
    new_images = service_images(new)
    old_images = service_images(old)
    changes = [
        {"service": name, "from": old_images.get(name), "to": image}
        for name, image in new_images.items()
        if old_images.get(name) != image
    ]
    changes.extend(
        {"service": name, "from": image, "to": None} for name, image in old_images.items() if name not in new_images
    )
    return changes


def _service_of(container_name, project, services):
    for service in sorted(services, key=len, reverse=True):
        if re.match(rf'^{re.escape(project)}[-_]{re.escape(service)}[-_][0-9]+$', container_name):
            return service
    return None


def parse_dry_run(text, project, services):
    """``{service: [statuses]}`` of what ``docker compose up --dry-run`` prints for each container.

    Lines look like ``DRY-RUN MODE -  Container avatar-api-1  Recreated`` (a temporary
    name ``<12 hex>_avatar-api-1`` while recreating). Containers of other services
    (orphans) are reported under ``''``.
    """
    out = {}
    for line in text.splitlines():
        match = _LINE.search(line)
        if not match:
            continue
        service = _service_of(match.group('name'), project, services)
        out.setdefault(service or '', []).append(match.group('status'))
    return out


def changed_services(dry_run, services):
    """The services (in compose order) that compose would create, recreate, start or remove."""
    changed = [s for s in services if any(st.startswith(_CHANGE_WORDS) for st in dry_run.get(s, []))]
    return changed


def with_stopped(changed, services, containers):
    """``changed`` plus the services with a container that does not run, in compose order.

    The dry run of the create phase alone (``--no-start``) names a container that exited (``Created``), but not one
    that never started (``created``, after a failed start) or one that restarts: ``up``'s start phase starts every
    container that is not running, so each of those is a change too. ``containers``: ``{service: [{state}]}``.
    """
    stopped = {s for s in services if any(c.get('state') != 'running' for c in containers.get(s, []))}
    return [s for s in services if s in changed or s in stopped]


def orphans_change(dry_run):
    """Whether compose would remove or change containers of services the file no longer has."""
    return any(st.startswith(_CHANGE_WORDS) for st in dry_run.get('', []))
