"""The CronJob controller: creates a CronJob's Jobs on schedule (pkg/controller/cronjob, v2).

Thin over svcnet.core.cronjob: reconcile reads the CronJob and the Jobs it owns from
the informer caches, parses the schedule in its time zone, asks `plan_cronjob` what to
write, writes it (deletes, the new Job, status), records upstream's events
(SuccessfulCreate "Created job x", SawCompletedJob, SuccessfulDelete, MissSchedule,
JobAlreadyActive, UnparseableSchedule, UnknownTimeZone) and asks to be woken just
after the next schedule time. The clock is injectable, so tests need not wait a minute.
"""
from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from svcnet.api.errors import ApiError
from svcnet.api.objects import controller_ref, name_of, namespace_of, spec_of, status_of, uid_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import Controller, Obj, resource
from svcnet.core import cronjob as core
from svcnet.core import cronjob_schedule

log = logging.getLogger("svcnet.controllers.cronjob")

JOBS = resource("batch", "jobs")
CRONJOBS = resource("batch", "cronjobs")
_BY_OWNER = "cronjob-controller/owner-uid"


def _owner_index(job: Obj) -> list[str]:
    ref = controller_ref(job)
    return [str(ref.get("uid"))] if ref is not None and ref.get("kind") == "CronJob" else []


def load_zone(name: str) -> dt.tzinfo:
    """The IANA zone (ValueError "unknown time zone X" when the database lacks it)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


class CronJobController(Controller):
    name = "cronjob-controller"
    workers = 1

    def setup(self) -> None:
        self.cronjobs = self.informers.informer(CRONJOBS)
        self.jobs = self.informers.informer(JOBS)
        try:
            self.jobs.add_index(_BY_OWNER, _owner_index)
        except ValueError:
            pass  # shared informer: already registered
        self.cronjobs.add_handler(**self.enqueue_handlers())
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda old, new: self._job_changed(new),
                              on_delete=self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{namespace_of(job)}/{ref.get('name')}")

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cj = self.cronjobs.get(namespace, name)
        if cj is None:
            return None
        parsed = await self._schedule(cj)
        if parsed is None:
            return None
        schedule, tz = parsed
        jobs = self.jobs.by_index(_BY_OWNER, uid_of(cj))
        plan = core.plan_cronjob(cj, jobs, now=self.clock(), schedule=schedule, tz=tz)
        for job_name in plan.delete:
            await self._delete_job(cj, job_name)
        if plan.create is not None:
            if not await self._create_job(cj, plan):
                return plan.requeue_after
        if plan.status != status_of(cj):
            await self.api.update_status(CRONJOBS, namespace_of(cj), {**cj, "status": plan.status})
        for event_type, reason, message in plan.events:
            await self.events.emit(cj, event_type, reason, message)
        return plan.requeue_after

    async def _schedule(self, cj: Obj) -> tuple[cronjob_schedule.Schedule, dt.tzinfo | None] | None:
        """The parsed schedule and its zone; an event and None when either is unusable."""
        spec = spec_of(cj)
        try:
            schedule = cronjob_schedule.parse(str(spec.get("schedule") or ""))
        except cronjob_schedule.ScheduleError as exc:
            await self.events.emit(cj, "Warning", "UnparseableSchedule",
                                   f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            return None
        zone_name = spec.get("timeZone") or schedule.zone
        if not zone_name:
            return schedule, None
        try:
            return schedule, load_zone(str(zone_name))
        except ValueError:
            await self.events.emit(cj, "Warning", "UnknownTimeZone", f"invalid timeZone: {zone_name!r}")
            return None

    async def _create_job(self, cj: Obj, plan: core.CronJobPlan) -> bool:
        assert plan.create is not None
        try:
            job = await self.api.create(JOBS, namespace_of(cj), plan.create)
        except ApiError as exc:
            if exc.code == 409 and exc.reason == "AlreadyExists":
                # Created by an earlier sync whose status write was lost: take it as ours if it is.
                job = await self.api.get(JOBS, namespace_of(cj), name_of(plan.create))
                ref = controller_ref(job)
                if ref is None or ref.get("uid") != uid_of(cj):
                    return False
            else:
                await self.events.emit(cj, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
                raise
        else:
            await self.events.emit(cj, "Normal", "SuccessfulCreate", f"Created job {name_of(job)}")
        core.record_created(plan, job)
        return True

    async def _delete_job(self, cj: Obj, job_name: str) -> None:
        try:
            await self.api.delete(JOBS, namespace_of(cj), job_name, propagation_policy="Background")
        except ApiError as exc:
            if exc.code != 404:
                await self.events.emit(cj, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
                raise
