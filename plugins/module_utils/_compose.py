# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic about compose files: which service images a release changes."""


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
