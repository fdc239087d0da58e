"""The TTL-after-finished controller: deletes a finished Job once spec.ttlSecondsAfterFinished
has passed since its Complete or Failed condition (pkg/controller/ttlafterfinished).

As upstream: the expiry is computed from the cached Job, checked again on a fresh copy
(the TTL may have been changed meanwhile), and the delete is Foreground with the Job's
uid as precondition, so its pods go first and a new Job of the same name is never hit.
"""
from __future__ import annotations

import datetime as dt
import logging

from svcnet.api.errors import ApiError
from svcnet.api.objects import is_being_deleted, namespace_of, spec_of, uid_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import Controller, Obj, resource
from svcnet.core import job as jobcore

log = logging.getLogger("svcnet.controllers.ttlafterfinished")

JOBS = resource("batch", "jobs")


def seconds_left(job: Obj, now: dt.datetime) -> float | None:
    """Seconds until the Job expires (<= 0: now), None when it has no TTL or has not finished."""
    ttl = spec_of(job).get("ttlSecondsAfterFinished")
    finished = jobcore.finish_time(job)
    if ttl is None or finished is None or is_being_deleted(job):
        return None
    return (finished + dt.timedelta(seconds=int(ttl)) - now).total_seconds()


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"
    workers = 1

    def setup(self) -> None:
        self.jobs = self.informers.informer(JOBS)
        self.jobs.add_handler(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.jobs.get(namespace, name)
        if cached is None or seconds_left(cached, self.clock()) is None:
            return None
        try:
            job = await self.api.get(JOBS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        left = seconds_left(job, self.clock())
        if left is None:
            return None
        if left > 0:
            return left
        log.info("deleting job %s: its TTL after finished has expired", key)
        try:
            await self.api.delete(JOBS, namespace_of(job), name, propagation_policy="Foreground",
                                  preconditions={"uid": uid_of(job)})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return None
