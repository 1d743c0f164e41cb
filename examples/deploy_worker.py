"""A deploy-style worker, as boardwalk runs them: hosts one by one, under the workspace mutex.

Between hosts it stops at a checkpoint, so an operator's catch (``pierhead catch WORKSPACE``)
pauses the rollout at a safe point. A failed host is reported as an error event and the worker
catches its own workspace, waiting for an operator to look and release it.

    python examples/deploy_worker.py --url ws://127.0.0.1:8765 --fail-on db-3
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import random
import socket

import sdk
from schema import WorkspaceDetails


class HostFailedError(RuntimeError):
    pass


async def deploy_host(host: str, *, fail_on: str | None, pace_s: float) -> None:
    """Stands in for the real work (an Ansible play, say) on one host."""
    await asyncio.sleep(pace_s * random.uniform(0.5, 1.5))
    if host == fail_on:
        raise HostFailedError(f"{host}: service did not come back after restart")


async def main(
    url: str, workspace: str, hosts: list[str], fail_on: str | None, pace_s: float
) -> None:
    details = WorkspaceDetails(
        workflow="rolling-restart",
        host_pattern=",".join(hosts),
        worker_hostname=socket.gethostname(),
        worker_username=getpass.getuser(),
        worker_command="deploy_worker.py",
        progress_hosts_total=str(len(hosts)),
    )
    async with (
        sdk.Worker(url, workspace, details=details) as worker,
        worker.mutex(wait=True) as lease,
    ):
        await worker.event(f"rollout started under fence {lease.fence}")
        done = 0
        while done < len(hosts):
            host = hosts[done]
            await worker.checkpoint()  # a catch pauses here, between hosts
            lease.check()  # stop at once if an operator broke the mutex
            await worker.progress("hosts", done, total=len(hosts))
            await worker.status("current_host", host)
            await worker.event(f"{host}: deploying (host {done + 1} of {len(hosts)})")
            try:
                await deploy_host(host, fail_on=fail_on, pace_s=pace_s)
            except HostFailedError as failure:
                await worker.post_event(str(failure), "error")
                await worker.post_catch(f"{host} failed; release to retry it")
                fail_on = None  # the retry after the release succeeds
                continue
            await worker.event(f"{host}: done", "success")
            done += 1
        await worker.progress("hosts", done, total=len(hosts))
        await worker.post_event("rollout finished", "success")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("PIERHEAD_URL", "ws://127.0.0.1:8765"))
    parser.add_argument("--workspace", default="deploy-demo")
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--fail-on", default=None, help="a host name that fails once, e.g. db-3")
    parser.add_argument("--pace", type=float, default=0.5, help="seconds per host")
    args = parser.parse_args()
    names = [f"db-{n}" for n in range(1, args.hosts + 1)]
    asyncio.run(main(args.url, args.workspace, names, args.fail_on, args.pace))
