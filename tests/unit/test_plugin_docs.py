# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module's and doc fragment's DOCUMENTATION, EXAMPLES and RETURN are YAML that parses.

build-check's ansible-doc says the same after the unit stage; this says it in a second, naming the block
and the line (a plain scalar with ': ' in a description is the usual mistake).
"""

from __future__ import annotations

import ast
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob('plugins/modules/*.py'), *ROOT.glob('plugins/doc_fragments/*.py')])
BLOCKS = ('DOCUMENTATION', 'EXAMPLES', 'RETURN')


def _blocks(path):
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], 'id', '')
            if name in BLOCKS and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield name, node.value.value


def test_there_are_files_to_check():
    assert len(FILES) > 10


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_documentation_blocks_are_yaml(path):
    found = dict(_blocks(path))
    if path.parent.name == 'modules':
        assert set(found) == set(BLOCKS), f'{path.name} lacks {set(BLOCKS) - set(found)}'
    for name, text in found.items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            pytest.fail(f'{path.name} {name} is not YAML: {exc}')
