"""The etcd driver: svcnet's store on an etcd v3 cluster, the way kube-apiserver keeps its objects there.

A resourceVersion is the etcd mod revision of the key. A create is a transaction that puts only
while the key's create revision is 0 (it does not exist); an update or delete that names a revision
puts or deletes only while the key's mod revision is that one (kube-apiserver's GuaranteedUpdate and
Delete preconditions, staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go). A list reads every
page at the revision of its first (etcd's range WithRev); a watch from a revision is an etcd watch
from there with the previous value of each key (WithPrevKV), and a revision etcd has compacted away
is Compacted (the API's 410 Gone). Keys and values: svcnet/storage/etcdlayout.py.

The store contract (base.py) has two promises an etcd watch does not give by itself, and this
driver keeps them so every caller works unchanged on any driver:

- A write returns after the watches of this store have been called with it. One etcd watch over
  the store's whole key range feeds the shared WatchHub (mvcc.py) from a dispatcher thread, and a
  write waits until the dispatcher has passed its revision (callbacks run in the dispatcher's
  thread, not the writer's; a write made from a callback does not wait, or it would wait on itself).
- A watch from a revision has replayed the history after it when watch() returns. The history is
  read with a second, short etcd watch over the whole key space: every revision is some key's
  write, so the event at the revision the dispatcher has reached is certain to come, and it ends
  the replay.

Several API servers may share one etcd: each one's watches see the others' writes (they arrive
through the dispatcher like its own), and optimistic concurrency is etcd's.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pyetcd
from pyetcd import etcdrpc

from svcnet.api.errors import ApiError
from svcnet.api.jsoncodec import building_many
from svcnet.storage.base import (
    Compacted,
    EncodedListResult,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    NoSpace,
    Obj,
    Predicate,
    Record,
    RevisionConflict,
    StorageError,
    Watch,
    WatchCallback,
)
from svcnet.storage.etcdlayout import (
    UnmappableKey,
    encode_value,
    etcd_prefix,
    from_etcd,
    stamped_text,
    to_etcd,
)
from svcnet.storage.mvcc import Change, WatchHub, decode_json, deliver, prefix_upper_bound

log = logging.getLogger(__name__)

ALL_KEYS = b"\0"  # as key and range end: every key (etcd's WithFromKey of "\0")
BATCH = 500  # keys a list reads from etcd per request
DELIVERY_WAIT = 10.0  # longest a write waits for its watch events (etcd unreachable: it returns anyway)
MAX_MESSAGE = 64 << 20  # a page of large objects stays far below this; etcd's own request limit is 1.5 MiB
_PUT, _DELETE = 0, 1  # mvccpb.Event.EventType
DEFAULT_PORT = 2379
# An endpoint that answers these is down, or cut off from its cluster's quorum: try another.
_FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# etcd's "hasleader" metadata (clientv3.WithRequireLeader, which kube-apiserver's watches use): a
# member cut off from its quorum refuses at once ("etcdserver: no leader") instead of letting the
# request wait for its timeout, so the client moves to a member that has one, or says 503 quickly.
_REQUIRE_LEADER = (("hasleader", "true"),)


def _not_sent(exc: grpc.RpcError) -> bool:
    """Whether a failed request certainly did not reach etcd's raft log (safe to send again)."""
    details = exc.details() or ""  # type: ignore[attr-defined]
    return "failed to connect" in details or "no leader" in details


@dataclass(frozen=True)
class EtcdConfig:
    endpoints: tuple[tuple[str, int], ...]  # (host, port), or (absolute unix socket path, 0)
    ca_cert: str | None = None  # TLS (https) when set
    cert: str | None = None  # client certificate and key, for etcd's --client-cert-auth
    key: str | None = None
    root: str = ""  # a namespace put before every key: several clusters (or tests) on one etcd
    timeout: float = 10.0  # seconds per request


class EtcdUnavailable(StorageError, ApiError):
    """etcd did not answer (down, no quorum, or too slow): a 503 with Retry-After for the API's clients.

    kube-apiserver answers such a storage error as a 500 carrying etcd's message; svcnet says 503
    Service Unavailable with Retry-After, which client-go and kubectl retry by themselves, so a
    restarting etcd (svcnet up restarts its own) is a pause for them, not a failure.
    """

    def __init__(self, details: str) -> None:
        ApiError.__init__(self, 503, "ServiceUnavailable", f"etcd is unavailable: {details}", retry_after=1)


class _EtcdCompacted(StorageError):
    """A read at a revision etcd has compacted (the caller knows which revision it asked for)."""


def _storage_error(exc: grpc.RpcError) -> StorageError:
    details = exc.details() or ""  # type: ignore[attr-defined]
    if "required revision has been compacted" in details:
        return _EtcdCompacted(details)
    if "required revision is a future revision" in details:
        return FutureRevision(details)
    if "database space exceeded" in details:
        return NoSpace()
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):  # type: ignore[attr-defined]
        return EtcdUnavailable(details)
    return StorageError(f"etcd: {exc.code().name}: {details}")  # type: ignore[attr-defined]


def _connect(config: EtcdConfig) -> pyetcd.MultiEndpointEtcd3Client:
    credentials = None
    if config.ca_cert:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as file:
                return file.read()
        credentials = grpc.ssl_channel_credentials(read(config.ca_cert), read(config.key), read(config.cert))
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    endpoints = [_endpoint(host, port, credentials, options) for host, port in config.endpoints]
    return pyetcd.MultiEndpointEtcd3Client(endpoints=endpoints, timeout=config.timeout, failover=True)


def _endpoint(host: str, port: int, credentials: grpc.ChannelCredentials | None,
              options: list[tuple[str, int]]) -> pyetcd.Endpoint:
    """A pyetcd endpoint for host:port, or for a unix socket when host is an absolute path.

    pyetcd names an endpoint "host:port" and dials that; a unix socket is dialled as gRPC's
    "unix:PATH" target instead (the channel is replaced before any use: gRPC connects lazily)."""
    endpoint = pyetcd.Endpoint(host if not host.startswith("/") else "localhost", port or DEFAULT_PORT,
                               secure=credentials is not None, creds=credentials, time_retry=2.0, opts=options)
    if host.startswith("/"):
        endpoint.channel.close()
        endpoint.netloc = f"unix:{host}"
        endpoint.channel = (grpc.secure_channel(endpoint.netloc, credentials, options=options) if credentials
                            else grpc.insecure_channel(endpoint.netloc, options=options))
    return endpoint


def _range_end(start: bytes) -> bytes:
    """The end of the range of keys starting with start."""
    if not start:
        return ALL_KEYS
    upper = prefix_upper_bound(start.decode())
    return ALL_KEYS if upper is None else upper.encode()


class _WatchStream:
    """One etcd Watch RPC carrying one watch."""

    def __init__(self, stub: etcdrpc.WatchStub, create: etcdrpc.WatchCreateRequest, timeout: float | None,
                 endpoint: pyetcd.Endpoint) -> None:
        self.endpoint = endpoint  # where the stream goes: the one to fail over from if it breaks
        self._requests: queue.SimpleQueue[etcdrpc.WatchRequest | None] = queue.SimpleQueue()
        self._requests.put(etcdrpc.WatchRequest(create_request=create))
        self._call = stub.Watch(iter(self._requests.get, None), timeout=timeout, metadata=_REQUIRE_LEADER)

    def __iter__(self) -> Iterator[etcdrpc.WatchResponse]:
        return iter(self._call)

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class EtcdStore:
    def __init__(self, config: EtcdConfig) -> None:
        if not config.endpoints:
            raise ValueError("etcd: no endpoints")
        self._config = config
        self._client = _connect(config)
        self._root = config.root
        self._root_key = config.root.encode()
        self._lock = threading.RLock()
        self._hub = WatchHub(self._lock)
        self._delivery = threading.Condition(threading.Lock())
        self._dispatched = 0  # the dispatcher has published every change up to here
        self._written = 0  # the newest revision a write of this store made
        self._dispatcher: _Dispatcher | None = None
        self._compacted_seen = 0
        self._closed = False
        self._failover_lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------------------------------

    def _rpc(self, stub: str, method: str, request: object, *, idempotent: bool = True) -> object:
        """One etcd request; a read fails over to the next endpoint when this one is unreachable.

        A write is retried only when it never left (no connection to the endpoint, or the member
        knows it has no leader): a write whose answer was lost may have been applied, and trying
        it again would report a KeyExists or a conflict for the caller's own write.
        """
        attempts = len(self._config.endpoints)
        for attempt in range(attempts):
            self._check_open()
            endpoint = self._client.endpoint_in_use
            try:
                return getattr(getattr(self._client, stub), method)(request, timeout=self._config.timeout,
                                                                    metadata=_REQUIRE_LEADER)
            except grpc.RpcError as exc:
                if exc.code() in _FAILOVER_CODES and len(self._config.endpoints) > 1:  # type: ignore[attr-defined]
                    self._fail_over(endpoint)
                    if attempt + 1 < attempts and (idempotent or _not_sent(exc)):
                        continue
                raise _storage_error(exc) from None
            except pyetcd.exceptions.NoServerAvailableError as exc:
                raise EtcdUnavailable(f"no endpoint reachable ({exc})") from None
        raise AssertionError("unreachable")

    def _fail_over(self, endpoint: pyetcd.Endpoint) -> None:
        """Mark an endpoint that failed a call failed, and move to the next one that is not (for the
        call's retry and the calls after it; the client keeps its stubs until its channel is asked
        for again). A call that failed on an endpoint already left changes nothing."""
        with self._failover_lock:
            if self._client.endpoint_in_use is not endpoint:
                return
            endpoint.fail()
            try:
                self._client.channel  # noqa: B018  # switches endpoint and drops the old stubs
            except pyetcd.exceptions.NoServerAvailableError:
                pass  # every endpoint failed recently: the next call says so

    def _watch_stream(self, create: etcdrpc.WatchCreateRequest, timeout: float | None) -> _WatchStream:
        try:
            endpoint = self._client.endpoint_in_use
            return _WatchStream(etcdrpc.WatchStub(self._client.channel), create, timeout, endpoint)
        except pyetcd.exceptions.NoServerAvailableError as exc:
            raise EtcdUnavailable(f"no endpoint reachable ({exc})") from None

    def _ekey(self, key: str) -> bytes:
        try:
            return (self._root + to_etcd(key)).encode()
        except UnmappableKey as exc:
            raise StorageError(str(exc)) from None

    def _skey(self, ekey: bytes) -> str | None:
        """The store key of an etcd key, None for a key outside this store's root."""
        if not ekey.startswith(self._root_key):
            return None
        return from_etcd(ekey[len(self._root_key):].decode())

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed")

    def _range(self, key: bytes, end: bytes = b"", *, revision: int = 0, limit: int = 0,
               count_only: bool = False) -> etcdrpc.RangeResponse:
        request = etcdrpc.RangeRequest(key=key, range_end=end, revision=revision, limit=limit, count_only=count_only)
        return self._rpc("kvstub", "Range", request)

    # --- revisions ---------------------------------------------------------------------------------

    def current_revision(self) -> int:
        return self._range(ALL_KEYS, limit=1, count_only=True).header.revision

    def compacted_revision(self) -> int:
        """etcd does not report its compaction point; it is the oldest revision a read still works at.

        A known compaction point is confirmed with one read (compaction only moves forward); else
        a binary search over the revisions finds it.
        """
        current = self.current_revision()
        low = max(self._compacted_seen, 1)
        if self._readable_at(low):
            return self._compacted_seen
        high = current  # the current revision is always readable
        while high - low > 1:
            middle = (low + high) // 2
            if self._readable_at(middle):
                high = middle
            else:
                low = middle
        self._compacted_seen = max(self._compacted_seen, high)
        return high

    def _readable_at(self, revision: int) -> bool:
        try:
            self._range(ALL_KEYS, revision=revision, limit=1, count_only=True)
        except _EtcdCompacted:
            return False
        return True

    def _compacted(self, requested: int) -> Compacted:
        return Compacted(requested, self.compacted_revision())

    def compact(self, revision: int) -> None:
        if revision > self.current_revision():
            raise FutureRevision(f"cannot compact at {revision}: it is newer than the current revision")
        if revision <= 0:
            return
        try:
            self._rpc("kvstub", "Compact", etcdrpc.CompactionRequest(revision=revision))
        except _EtcdCompacted:
            return  # etcd has compacted at or past it already: nothing to do, as the other drivers
        self._compacted_seen = max(self._compacted_seen, revision)

    # --- reads -------------------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        kvs = self._range(self._ekey(key)).kvs
        if not kvs:
            return None
        kv = kvs[0]
        return Record(key, decode_json(stamped_text(kv.value, kv.mod_revision)), kv.mod_revision, kv.create_revision)

    def list(self, prefix: str, *, predicate: Predicate | None = None, limit: int = 0,
             start_after: str | None = None) -> ListResult:
        with building_many():
            page = self._page(prefix, predicate, limit, start_after, 0)
            records = [Record(key, value if value is not None else decode_json(text), mod, create)
                       for key, text, mod, create, value in page.found]
            return ListResult(records, page.revision, page.continue_key, page.remaining)

    def list_encoded(self, prefix: str, *, predicate: Predicate | None = None, limit: int = 0,
                     start_after: str | None = None, revision: int | None = None) -> EncodedListResult:
        with building_many():
            if revision is not None and revision <= 0:
                return self._empty_at_zero()
            if revision is not None and revision > self.current_revision():
                raise FutureRevision(f"revision {revision} is newer than the current revision")
            try:
                page = self._page(prefix, predicate, limit, start_after, revision or 0)
            except _EtcdCompacted:
                raise self._compacted(revision or 0) from None
            return EncodedListResult([text for _, text, _, _, _ in page.found], page.revision, page.continue_key,
                                     page.remaining, [mod for _, _, mod, _, _ in page.found])

    def _empty_at_zero(self) -> EncodedListResult:
        """Revision 0 is the store before its first write: empty, unless compaction has dropped it."""
        compacted = self.compacted_revision()
        if compacted > 0:
            raise Compacted(0, compacted)
        return EncodedListResult([], 0, None, 0, [])

    def _page(self, prefix: str, predicate: Predicate | None, limit: int, start_after: str | None,
              revision: int) -> _Page:
        batch = min(limit + 1, BATCH) if limit and predicate is None else BATCH
        scan = _Scan(self, prefix, start_after, revision, batch)
        found: list[tuple[str, str, int, int, Obj | None]] = []
        candidates = iter(scan)
        for key, data, mod, create in candidates:
            text = stamped_text(data, mod)
            value = None
            if predicate is not None:
                value = decode_json(text)
                if not predicate(value):
                    continue
            if limit and len(found) == limit:
                remaining = scan.count_after(found[-1][0], candidates) if predicate is None else 0
                return _Page(found, scan.revision, found[-1][0], remaining)
            found.append((key, text, mod, create, value))
        return _Page(found, scan.revision, None, 0)

    # --- writes ------------------------------------------------------------------------------------

    def create(self, key: str, value: Obj) -> Record:
        data = encode_value(value)  # a value that is not JSON fails here, before anything is sent
        ekey = self._ekey(key)
        absent = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.CREATE, key=ekey,
                                 create_revision=0)
        put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=ekey, value=data))
        response = self._rpc("kvstub", "Txn", etcdrpc.TxnRequest(compare=[absent], success=[put]), idempotent=False)
        if not response.succeeded:
            raise KeyExists(key)
        revision = response.header.revision
        self._await_delivery(revision)
        return Record(key, decode_json(stamped_text(data, revision)), revision, revision)

    def update(self, key: str, value: Obj, *, expected_revision: int | None = None) -> Record:
        data = encode_value(value)
        ekey = self._ekey(key)
        put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=ekey, value=data, prev_kv=True))
        response = self._guarded(key, ekey, expected_revision, put)
        revision = response.header.revision
        create_revision = response.responses[0].response_put.prev_kv.create_revision
        self._await_delivery(revision)
        return Record(key, decode_json(stamped_text(data, revision)), revision, create_revision)

    def delete(self, key: str, *, expected_revision: int | None = None) -> Record:
        ekey = self._ekey(key)
        remove = etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=ekey, prev_kv=True))
        response = self._guarded(key, ekey, expected_revision, remove)
        revision = response.header.revision
        [previous] = response.responses[0].response_delete_range.prev_kvs
        self._await_delivery(revision)
        return Record(key, decode_json(stamped_text(previous.value, revision)), revision, previous.create_revision)

    def _guarded(self, key: str, ekey: bytes, expected_revision: int | None,
                 operation: etcdrpc.RequestOp) -> etcdrpc.TxnResponse:
        """operation, applied only while the key exists (at expected_revision, when one is named)."""
        if expected_revision is None:
            guard = etcdrpc.Compare(result=etcdrpc.Compare.GREATER, target=etcdrpc.Compare.CREATE, key=ekey,
                                    create_revision=0)
        else:
            guard = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL, target=etcdrpc.Compare.MOD, key=ekey,
                                    mod_revision=expected_revision)
        read = etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=ekey))
        response = self._rpc("kvstub", "Txn", etcdrpc.TxnRequest(compare=[guard], success=[operation], failure=[read]),
                             idempotent=False)
        if response.succeeded:
            return response
        kvs = response.responses[0].response_range.kvs
        if not kvs:
            raise KeyNotFound(key)
        raise RevisionConflict(key, expected_revision or 0, kvs[0].mod_revision)

    def _await_delivery(self, revision: int) -> None:
        """Return once this store's watches have been called with every write it made so far."""
        with self._delivery:
            self._written = max(self._written, revision)
            dispatcher = self._dispatcher
            if dispatcher is None or threading.current_thread() is dispatcher:
                return
            deadline = time.monotonic() + DELIVERY_WAIT
            while self._dispatched < self._written and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("etcd watch events for revision %d not delivered after %.0fs", revision,
                                DELIVERY_WAIT)
                    return
                self._delivery.wait(left)

    # --- watch -------------------------------------------------------------------------------------

    def watch(self, prefix: str, since_revision: int, callback: WatchCallback, *,
              predicate: Predicate | None = None) -> Watch:
        self._check_open()
        current = self.current_revision()
        if since_revision > current:
            raise FutureRevision(f"revision {since_revision} is newer than the current {current}")
        if since_revision and not self._readable_at(since_revision):
            raise self._compacted(since_revision)
        self._start_dispatcher(current)
        replayed = since_revision
        while True:
            with self._lock:
                with self._delivery:
                    through = self._dispatched
                if not since_revision or replayed >= through:
                    return self._hub.subscribe(prefix, 0, callback, predicate, history=None, compacted_revision=0,
                                               current_revision=max(replayed, through, 0 if since_revision else current))
            # Outside the lock: a callback may write, and the dispatcher must be free to deliver it.
            for change in self._history(replayed, through):
                if change.key.startswith(prefix):
                    deliver(change, callback, predicate)
            replayed = through

    def _start_dispatcher(self, current: int) -> None:
        with self._lock, self._delivery:
            if self._dispatcher is None:
                self._dispatched = max(self._dispatched, current)
                self._dispatcher = _Dispatcher(self, current)
                self._dispatcher.start()

    def _history(self, since: int, through: int) -> list[Change]:
        """This store's changes after since, through revision through, read with an etcd watch."""
        if through <= since:
            return []
        create = etcdrpc.WatchCreateRequest(key=ALL_KEYS, range_end=ALL_KEYS, start_revision=since + 1, prev_kv=True)
        stream = self._watch_stream(create, timeout=max(self._config.timeout, 60.0))
        changes: list[Change] = []
        try:
            for response in stream:
                if response.compact_revision:
                    raise Compacted(since, response.compact_revision)
                if response.canceled:
                    raise StorageError(f"etcd cancelled the watch: {response.cancel_reason}")
                for event in response.events:
                    if event.kv.mod_revision > through:
                        return changes
                    change = self._change(event)
                    if change is not None:
                        changes.append(change)
                if response.events and response.events[-1].kv.mod_revision >= through:
                    return changes
        except grpc.RpcError as exc:
            raise _storage_error(exc) from None
        finally:
            stream.close()
        raise StorageError("etcd ended the watch before the history was read")

    def _change(self, event: etcdrpc.Event) -> Change | None:
        """A change of this store from an etcd watch event (None: a key outside its root)."""
        key = self._skey(event.kv.key)
        if key is None:
            return None
        revision = event.kv.mod_revision
        previous = event.prev_kv if event.HasField("prev_kv") else None
        prev_text = stamped_text(previous.value, previous.mod_revision) if previous is not None else None
        if event.type == _DELETE:
            if previous is None or prev_text is None:
                log.warning("etcd delete of %s at %d came without the previous value; skipped", key, revision)
                return None
            return Change(revision, key, "DELETED", stamped_text(previous.value, revision), prev_text)
        text = stamped_text(event.kv.value, revision)
        if event.kv.create_revision == revision:
            return Change(revision, key, "ADDED", text)
        return Change(revision, key, "MODIFIED", text, prev_text)

    def _publish(self, changes: list[Change], revision: int) -> None:
        """Hand changes to the watches and record the revision passed, in one step under the lock
        (a watch() subscribing in between would otherwise miss them)."""
        with self._lock:
            if changes:
                self._hub.publish(*changes)
            with self._delivery:
                self._dispatched = max(self._dispatched, revision)
                self._delivery.notify_all()

    def _lose_watches(self, reason: str) -> None:
        """The dispatcher cannot resume where it was: end every watch, as a lost etcd watch ends kube's."""
        log.error("etcd watch lost (%s): ending all watches", reason)
        with self._lock:
            self._hub.close()
            self._hub = WatchHub(self._lock)

    def close(self) -> None:
        with self._lock, self._delivery:
            if self._closed:
                return
            self._closed = True
            dispatcher = self._dispatcher
            self._delivery.notify_all()
            self._hub.close()
        if dispatcher is not None:
            dispatcher.stop()
        self._client.close()


@dataclass
class _Page:
    found: list[tuple[str, str, int, int, Obj | None]]  # key, stamped text, mod and create revision, value
    revision: int
    continue_key: str | None
    remaining: int


class _Scan:
    """The keys under a prefix after start_after, in key order, read in batches at one revision."""

    def __init__(self, store: EtcdStore, prefix: str, start_after: str | None, revision: int, batch: int) -> None:
        self._store = store
        self._prefix = prefix
        self._batch = batch
        root = store._root_key
        mapped = etcd_prefix(prefix)
        self._direct = mapped is not None
        self._after_all = False
        start = root + (mapped or "").encode()
        self._end = _range_end(start) if start else ALL_KEYS
        self._start_after = start_after if start_after is not None and start_after >= prefix else None
        if self._direct and self._start_after is not None:
            if not self._start_after.startswith(prefix):
                self._after_all = True  # every key under the prefix sorts before it
            else:
                start = store._ekey(self._start_after) + b"\0"
        self._start = start or ALL_KEYS
        if self._after_all:
            self.revision = revision or store.current_revision()
            self._first = etcdrpc.RangeResponse()
            return
        first = store._range(self._start, self._end, revision=revision, limit=batch)
        self.revision = first.header.revision if not revision else revision
        self._first = first

    def __iter__(self) -> Iterator[tuple[str, bytes, int, int]]:
        if self._direct:
            return self._in_order()
        return iter(sorted(self._in_order()))

    def _in_order(self) -> Iterator[tuple[str, bytes, int, int]]:
        """(key, stored value, mod revision, create revision) under the prefix; key order when direct."""
        response = self._first
        while True:
            for kv in response.kvs:
                key = self._store._skey(kv.key)
                if key is None or not key.startswith(self._prefix):
                    continue
                if not self._direct and self._start_after is not None and key <= self._start_after:
                    continue
                yield key, kv.value, kv.mod_revision, kv.create_revision
            if not response.more or not response.kvs:
                return
            response = self._store._range(response.kvs[-1].key + b"\0", self._end, revision=self.revision,
                                          limit=self._batch)

    def count_after(self, key: str, rest: Iterator[tuple[str, bytes, int, int]]) -> int:
        """How many keys under the prefix sort after key (rest: the scan's iterator, past key)."""
        if not self._direct:
            return 1 + sum(1 for _ in rest)
        after = self._store._ekey(key) + b"\0"
        return self._store._range(after, self._end, revision=self.revision, count_only=True).count


class _Dispatcher(threading.Thread):
    """Follows one etcd watch over the store's key range and publishes its events, in order."""

    def __init__(self, store: EtcdStore, start_revision: int) -> None:
        super().__init__(name="etcd-watch-dispatcher", daemon=True)
        self._store = store
        self._next = start_revision + 1
        self._stream: _WatchStream | None = None
        self._stopping = False
        self._failing = False  # the watch broke and has not delivered since (log once, not every retry)

    def run(self) -> None:
        while not self._stopping:
            try:
                self._follow()
            except (grpc.RpcError, StorageError) as exc:
                if self._stopping:
                    return
                if isinstance(exc, grpc.RpcError) and exc.code() in _FAILOVER_CODES and self._stream is not None \
                        and len(self._store._config.endpoints) > 1:  # type: ignore[attr-defined]
                    self._store._fail_over(self._stream.endpoint)
                reason = _storage_error(exc) if isinstance(exc, grpc.RpcError) else exc
                if not self._failing:
                    log.warning("etcd watch interrupted (%s); resuming from revision %d", reason, self._next)
                self._failing = True
            if not self._stopping:
                time.sleep(0.5)  # etcd unreachable: try again shortly, not in a tight loop

    def _follow(self) -> None:
        store = self._store
        start = store._root_key or ALL_KEYS
        create = etcdrpc.WatchCreateRequest(key=start, range_end=_range_end(store._root_key),
                                            start_revision=self._next, prev_kv=True)
        self._stream = stream = store._watch_stream(create, timeout=None)
        if self._stopping:  # stop() ran before the stream existed
            stream.close()
            return
        try:
            for response in stream:
                if self._failing:
                    log.info("etcd watch resumed from revision %d", self._next)
                    self._failing = False
                if response.compact_revision:
                    store._lose_watches(f"history before revision {response.compact_revision} was compacted")
                    self._next = store.current_revision() + 1
                    return
                if response.canceled:
                    raise StorageError(f"etcd cancelled the watch: {response.cancel_reason}")
                if not response.events:
                    continue
                changes = [change for event in response.events if (change := store._change(event)) is not None]
                revision = response.events[-1].kv.mod_revision
                store._publish(changes, revision)
                self._next = revision + 1
        finally:
            stream.close()

    def stop(self) -> None:
        self._stopping = True
        if self._stream is not None:
            self._stream.close()
        if self is not threading.current_thread():
            self.join(timeout=5.0)
