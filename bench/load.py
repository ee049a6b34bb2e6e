#!/usr/bin/env python
# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Load generator for the deploy bench: a fixed request rate through the proxy.

Sends ``rate`` requests per second to 127.0.0.1:PORT, alternating between the
targets (by default the frontend ``/`` and the api ``/health``, told apart by
their Host header, as the proxy routes them). Each request is sent on its own
schedule (open loop), on a new connection, from a thread pool, so a request
that hangs does not slow the others down. A request fails when it raises, times
out or answers anything but 2xx.

Reported per run: requests sent, failed (by cause), the longest outage (the
longest stretch of send times in which every request failed: from the first
failed request to the next request that succeeded) and latency percentiles of
the requests that succeeded.

Usage alone (bounded in time): .venv/bin/python bench/load.py --port 8122 --seconds 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

DEFAULT_TARGETS = (('daidai.amis.hk', '/'), ('api.daidai.amis.hk', '/health'))
MAX_SECONDS = 900  # a load run never outlives this, whatever the caller forgets


def one_request(port, host_header, path, timeout):
    """Send one GET; return (status or None, error or '')."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path, headers={'Host': host_header, 'Connection': 'close'})
        resp = conn.getresponse()
        resp.read()
        if 200 <= resp.status < 300:
            return resp.status, ''
        return resp.status, f'HTTP {resp.status}'
    except TimeoutError:
        return None, 'timeout'
    except OSError as exc:  # refused, reset, unreachable: the connection failed
        return None, type(exc).__name__
    except http.client.HTTPException as exc:  # the server closed mid-answer
        return None, type(exc).__name__
    finally:
        conn.close()


def longest_outage(samples, end=None):
    """Longest stretch, in seconds, in which every request sent failed.

    ``samples`` are (sent_at, ok) pairs in any order. A stretch runs from the
    first failed request to the next request that succeeded; a stretch still
    open at the end runs to ``end`` (default: the last send time).
    """
    ordered = sorted(samples)
    if not ordered:
        return 0.0
    end = ordered[-1][0] if end is None else end
    longest = 0.0
    started = None
    for sent_at, ok in ordered:
        if not ok and started is None:
            started = sent_at
        elif ok and started is not None:
            longest = max(longest, sent_at - started)
            started = None
    if started is not None:
        longest = max(longest, end - started)
    return round(longest, 3)


def percentile(values, fraction):
    """Nearest-rank percentile of ``values`` (0 < fraction <= 1); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(fraction * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def summarize(results, end=None):
    """Summary of a list of result dicts (sent_at, ok, error, latency)."""
    failed = [r for r in results if not r['ok']]
    latencies = [r['latency'] for r in results if r['ok']]
    causes = {}
    for r in failed:
        causes[r['error']] = causes.get(r['error'], 0) + 1
    return {
        'sent': len(results),
        'failed': len(failed),
        'failed_by_cause': dict(sorted(causes.items())),
        'longest_outage_s': longest_outage([(r['sent_at'], r['ok']) for r in results], end),
        'latency_ms': {
            'p50': _ms(percentile(latencies, 0.5)),
            'p99': _ms(percentile(latencies, 0.99)),
            'max': _ms(max(latencies) if latencies else None),
        },
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


class Load:
    """Open-loop load at ``rate`` requests/s until ``stop()``; use as a context manager."""

    def __init__(self, port, rate=40.0, targets=DEFAULT_TARGETS, timeout=10.0, max_seconds=MAX_SECONDS):
        if rate <= 0:
            raise ValueError(f'rate must be above 0 requests/s, got {rate}')
        self.port = port
        self.rate = rate
        self.targets = list(targets)
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Enough workers for every request of a full timeout window to hang at once.
        self._pool = ThreadPoolExecutor(max_workers=int(rate * timeout) + 8, thread_name_prefix='load')
        self._thread = threading.Thread(target=self._schedule, name='load-scheduler', daemon=True)
        self.started = None
        self.stopped = None

    def _fire(self, index, sent_at):
        host_header, path = self.targets[index % len(self.targets)]
        begin = time.monotonic()
        status, error = one_request(self.port, host_header, path, self.timeout)
        latency = time.monotonic() - begin
        with self._lock:
            self.results.append(
                {
                    'sent_at': round(sent_at - self.started, 4),
                    'target': f'{host_header}{path}',
                    'ok': not error,
                    'status': status,
                    'error': error,
                    'latency': latency,
                }
            )

    def _schedule(self):
        index = 0
        interval = 1.0 / self.rate
        while not self._stop.is_set():
            due = self.started + index * interval
            now = time.monotonic()
            if now - self.started > self.max_seconds:
                break
            if due > now:
                self._stop.wait(due - now)
                continue
            self._pool.submit(self._fire, index, due)
            index += 1

    def start(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self):
        """Stop sending, wait for the requests in flight (at most one timeout), return the summary."""
        self.stopped = time.monotonic()
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            results = list(self.results)
        summary = summarize(results, end=self.stopped - self.started)
        summary['seconds'] = round(self.stopped - self.started, 2)
        summary['rate'] = self.rate
        return summary

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.stopped is None:
            self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--port', type=int, default=8122, help='published HTTP port of the proxy on 127.0.0.1')
    parser.add_argument('--rate', type=float, default=40.0, help='requests per second (default 40)')
    parser.add_argument('--seconds', type=float, default=10.0, help='how long to send (at most 900)')
    parser.add_argument('--timeout', type=float, default=10.0, help='seconds before a request counts as failed')
    args = parser.parse_args(argv)
    load = Load(args.port, args.rate, timeout=args.timeout).start()
    time.sleep(min(args.seconds, MAX_SECONDS))
    json.dump(load.stop(), sys.stdout, indent=2)
    print()


if __name__ == '__main__':
    main()
