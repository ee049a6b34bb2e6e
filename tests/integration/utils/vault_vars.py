# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vault variables a deploy inventory must define (test inventories fill them with dummy values)."""

SECRETS = (
    'vault_db_password',
    'vault_directus_key',
    'vault_directus_secret',
    'vault_directus_admin_password',
    'vault_directus_admin_token',
    'vault_api_directus_token',
    'vault_openai_api_key',
    'vault_azure_speech_key',
    'vault_jwt_secret',
    'vault_npm_admin_password',
)
