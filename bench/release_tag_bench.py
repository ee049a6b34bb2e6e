#!/usr/bin/env python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bench of release resolution against a local paginating fake registry.

Resolves ``latest`` for [api, frontend] with 500 and with 5,000 tags per image
(semver releases and pre-releases plus non-semver noise), page size 100, and
prints HTTP requests and elapsed time.  Requests grow with the number of tag
pages, not with the number of tags: manifest lookups stay at two per image.

Usage: .venv/bin/python bench/release_tag_bench.py [--json bench/results/release_tag.json]
Everything runs on 127.0.0.1 and takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '.collections'))

from ansible_collections.avatar_mgmt.ops.plugins.module_utils._oci import RegistryClient
from ansible_collections.avatar_mgmt.ops.plugins.module_utils._release import (
    resolve_release,
)
from ansible_collections.avatar_mgmt.ops.tests.unit.utils.fake_registry import (
    FakeRegistry,
    Manifest,
)

REPO = 'rayhu/avatar-mgmt'
IMAGES = ['api', 'frontend']
PAGE_SIZE = 100
NOISE_EVERY = 10  # one non-semver tag per this many tags


def make_tags(image, count):
    """``count`` tags: releases, pre-releases and ~10 % noise; latest/staging on the newest."""
    tags = {}
    i = 0
    while len(tags) < count:
        major, minor, patch = 1 + i // 1000, (i // 10) % 100, i % 10
        if i % NOISE_EVERY == 0:
            name = 'sha-%07x' % (i * 2654435761 % (1 << 28))
        elif i % 3 == 0:
            name = f'v{major}.{minor}.{patch + 1}-rc.{1 + i % 4}'
        else:
            name = f'v{major}.{minor}.{patch}'
        tags[name] = Manifest(f'{image}-{name}')
        i += 1
    releases = sorted(
        (t for t in tags if t.startswith('v') and '-' not in t), key=lambda t: tuple(int(x) for x in t[1:].split('.'))
    )
    tags['latest'] = tags[releases[-1]]
    for extra in ('main', 'buildcache', 'staging', '20240101'):
        tags.setdefault(extra, Manifest(image + extra))
    return tags, releases[-1]


def run(count):
    repos = {}
    expected = None
    for image in IMAGES:
        repos[f'{REPO}/{image}'], expected = make_tags(image, count)
    with FakeRegistry(repos, page_max=PAGE_SIZE) as reg:
        client = RegistryClient(reg.url, page_size=PAGE_SIZE, timeout=10)
        start = time.perf_counter()
        result = resolve_release(client, REPO, IMAGES, 'latest')
        elapsed = time.perf_counter() - start
        client.close()
        heads = len(reg.requests('HEAD'))
    assert result['version'] == expected, (result['version'], expected)
    total_tags = len(repos[f'{REPO}/api'])
    pages = math.ceil(total_tags / PAGE_SIZE)
    return {
        'tags_per_image': total_tags,
        'version': result['version'],
        'requests': client.request_count,
        'tag_pages': pages * len(IMAGES),
        'manifest_heads': heads,
        'elapsed_s': round(elapsed, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    small, large = run(500), run(5000)
    print(f"{'tags/image':<14} {'version':>8} {'requests':>10} {'tag pages':>10} {'HEADs':>8} {'elapsed':>10}")
    for row in (small, large):
        print(
            f"{row['tags_per_image']:<14d} {row['version']:>8} {row['requests']:>10d} {row['tag_pages']:>10d} "
            f"{row['manifest_heads']:>8d} {row['elapsed_s']:>9.3f}s"
        )
    ratio = {
        'tags': large['tags_per_image'] / small['tags_per_image'],
        'requests': large['requests'] / small['requests'],
        'elapsed': large['elapsed_s'] / small['elapsed_s'] if small['elapsed_s'] else float('nan'),
    }
    print(
        f"ratio 5000/500: tags x{ratio['tags']:.1f}, requests x{ratio['requests']:.1f}, elapsed x{ratio['elapsed']:.1f}"
    )
    print(f"requests = tag pages + {large['manifest_heads']} manifest HEADs (2 per image): they follow pages, not tags")
    for row in (small, large):
        assert row['requests'] == row['tag_pages'] + row['manifest_heads'] == row['tag_pages'] + 2 * len(IMAGES)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as handle:
            json.dump({'small': small, 'large': large, 'ratio': ratio}, handle, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
