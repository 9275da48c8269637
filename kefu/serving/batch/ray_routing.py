"""Session routing of a Ray run: the buckets routed by Ray tasks once the scoring actors are done.

`ray_engine.py` hands `RayRouting(workers)` to the `SessionRouter` as its `BucketRunner`
(session_routing.py), so a conversation spread over files and chunks is routed with the same
code, bucket by bucket, as the local engine's `RoutingPool` routes it.
"""

from __future__ import annotations

from contextlib import suppress

from kefu.errors import ConfigError, KefuError
from kefu.serving.batch.bucket_routing import (
    BucketTask,
    SessionStats,
    route_bucket,
    route_serially,
)
from kefu.serving.batch.ray_cluster import RAY_EXTRA_MISSING

try:
    import ray
    from ray.exceptions import RayTaskError
except ImportError:  # pragma: no cover - the ray extra is installed in CI
    raise ConfigError(RAY_EXTRA_MISSING) from None


class RayRouting:
    """A `BucketRunner` (bucket_routing.py): each bucket routed by a Ray task of one CPU, at
    most `workers` at once (memory: one bucket each, wherever Ray places them). The tasks read
    and write the bucket files under OUTPUT.partial/sessions/ by absolute path, as the read
    tasks read the inputs: the run's files are on storage the cluster shares. A task whose
    worker died is retried by Ray (routing a bucket again writes the same file); a run that
    stops cancels the tasks still out."""

    def __init__(self, workers: int):
        self.workers = workers

    def __call__(self, tasks: list[BucketTask]) -> list[SessionStats]:
        if self.workers == 1 or len(tasks) == 1:  # as fast here, and no task to start
            return route_serially(tasks)
        route = ray.remote(num_cpus=1)(route_bucket)
        waiting, out = list(tasks), []
        in_flight: list[ray.ObjectRef] = []
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < self.workers:
                    in_flight.append(route.remote(waiting.pop(0)))
                done, in_flight = ray.wait(in_flight, num_returns=1)
                out.extend(_results(done))
        except BaseException:
            for ref in in_flight:
                with suppress(Exception):  # the error that stopped the run is the one to report
                    ray.cancel(ref, force=True)
            raise
        return out


def _results(refs: list[ray.ObjectRef]) -> list[SessionStats]:
    """The routing tasks' results; kefu's errors and write errors (a full disk) that a task
    raised are raised as the driver would have raised them routing here (the merge names the
    output in a write error): one line, with no remote traceback (Ray's `RayTaskError` holds
    one in its message). A bug stays the `RayTaskError`, its traceback kept (`ray_errors.py`)."""
    try:
        return list(ray.get(refs))
    except RayTaskError as exc:
        if isinstance(exc.cause, KefuError | OSError):
            raise exc.cause from None
        raise
