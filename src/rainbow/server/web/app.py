"""The dashboard's HTTP routes (aiohttp), run in the gRPC server's event loop.

Every request that shows or changes something names its identity once
(``_identity``) and asks the scheduler's checks for the rest: the clusters a
token opens (``visible_clusters``), ``Scheduler.get_job``, ``Scheduler.cancel`` and
``Scheduler.set_urgency`` for one job, ``Scheduler.watch_scope`` for the live stream. Store reads and
scheduler calls run on the server's worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from rainbow.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RainbowError,
    Unauthenticated,
)
from rainbow.lifecycle import JobState
from rainbow.scheduler import Scheduler
from rainbow.server.events import EventHub
from rainbow.server.web import live, views
from rainbow.server.web.auth import COOKIE, SESSION_SECONDS, Identity, Sessions, identify, viewer_scope
from rainbow.server.web.live import Broadcast, Lagging
from rainbow.store import PAGE_SORTS, JobEvent, JobPage, JobRecord

log = logging.getLogger("rainbow.server.web")
T = TypeVar("T")

HERE = Path(__file__).parent
PAGE_SIZE = 50
COUNTS_SECONDS = 2.0  # how often the live stream sends job counts (and how old they may be)
STREAM_PING_SECONDS = 15.0
# A stream writes at most this often: a person does not see the difference, the server serves many viewers.
STREAM_BATCH_SECONDS = 0.5
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Counts:
    """Jobs per (cluster, state) for all viewers of this replica, read at most every ``COUNTS_SECONDS``.

    Counting a large store takes a while (a scan of an index), so the reads are
    spaced further apart when they are slow: at least 20 times the last one's
    duration, which keeps them to 5% of the store's time whatever its size.
    """

    def __init__(self, run: Callable[..., Awaitable[Any]], scheduler: Scheduler) -> None:
        self._run = run
        self._scheduler = scheduler
        self._value: dict[tuple[str, JobState], int] = {}
        self._time = -math.inf
        self._spacing = COUNTS_SECONDS
        self._pending: asyncio.Future | None = None

    async def get(self) -> dict[tuple[str, JobState], int]:
        if time.monotonic() - self._time < self._spacing:
            return self._value
        if self._pending is None:
            started = time.monotonic()
            self._pending = asyncio.ensure_future(self._run(self._scheduler.store.job_counts_by_cluster))
            try:
                self._value = await asyncio.shield(self._pending)
                self._time = time.monotonic()
                self._spacing = max(COUNTS_SECONDS, 20 * (self._time - started))
            finally:
                self._pending = None
            return self._value
        await asyncio.shield(self._pending)
        return self._value


class Dashboard:
    """The aiohttp application and what its handlers share."""

    def __init__(self, scheduler: Scheduler, executor: Executor, hub: EventHub, secure: bool = False) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self.hub = hub
        self.secure = secure
        self.sessions = Sessions(scheduler.store)
        self.counts = Counts(self.run, scheduler)
        self.broadcast = Broadcast(hub, self._fetch, self._last, STREAM_BATCH_SECONDS)
        self._streams: set[asyncio.Task] = set()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["tojson_text"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
        self.app = web.Application(middlewares=[self._headers])
        self.app.add_routes([
            web.get("/", self.overview),
            web.get("/signin", self.signin_form),
            web.post("/signin", self.signin),
            web.post("/signout", self.signout),
            web.get("/jobs", self.jobs),
            web.get("/jobs/{id}", self.job),
            web.post("/jobs/{id}/cancel", self.cancel),
            web.post("/jobs/{id}/urgency", self.urgency),
            web.get("/clusters/{name}", self.cluster),
            web.get("/workflows/{id}", self.workflow),
            web.get("/events", self.events),
            web.static("/static", HERE / "static"),
        ])

    async def _fetch(
        self, after: int, clusters: list[str] | None, job: int | None, limit: int, user: str | None = None
    ) -> list[JobEvent]:
        return await self.run(self.scheduler.store.events_since, after, clusters, job, limit, user)

    async def _last(self) -> int:
        return await self.run(self.scheduler.store.last_event_seq)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    @web.middleware
    async def _headers(self, request: web.Request, handler):
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not response.prepared:
            total = f"total;dur={(time.perf_counter() - started) * 1000:.1f}"
            earlier = response.headers.get("Server-Timing")
            response.headers["Server-Timing"] = f"{earlier}, {total}" if earlier else total
        if isinstance(response, web.HTTPException) and response.status >= 300:
            raise response
        return response

    # -- identity -----------------------------------------------------------
    def _identity(self, request: web.Request) -> Identity | None:
        """The request's signed-in identity; the cookie is checked once per request."""
        if "rainbow.identity" not in request:
            request["rainbow.identity"] = self.sessions.check(request.cookies.get(COOKIE))
        return request["rainbow.identity"]

    def _require(self, request: web.Request, page: bool = True) -> Identity:
        identity = self._identity(request)
        if identity is None:
            if page:
                raise web.HTTPSeeOther("/signin?" + urlencode({"next": request.path_qs}))
            raise web.HTTPUnauthorized(text="sign in first")
        return identity

    async def _form_checked(self, request: web.Request) -> Identity:
        """The identity of a state-changing POST, after its CSRF token and origin are checked."""
        identity = self._require(request, page=False)
        form = await request.post()
        _same_origin(request)
        if not self.sessions.check_csrf(identity, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        return identity

    def _render(self, name: str, request: web.Request, status: int = 200, **values: Any) -> web.Response:
        identity = self._identity(request)
        text = self.templates.get_template(name).render(
            identity=identity,
            csrf=self.sessions.csrf(identity) if identity else "",
            static=_static,
            **values,
        )
        return web.Response(text=text, status=status, content_type="text/html")

    # -- sign-in ------------------------------------------------------------
    async def signin_form(self, request: web.Request) -> web.Response:
        return self._render("signin.html", request, next=_local(request.query.get("next", "/")), error="")

    async def signin(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        _same_origin(request)
        target = _local(str(form.get("next", "/")))
        found = await self.run(identify, self.scheduler, str(form.get("token", "")).strip())
        if found is None:
            return self._render("signin.html", request, status=403, next=target,
                                error="This token opens no cluster (nor is it the global token or a user's).")
        cookie, _ = self.sessions.issue(*found)
        response = web.HTTPSeeOther(target)
        response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="Strict",
                            secure=self.secure, path="/")
        raise response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        await self._form_checked(request)
        response = web.HTTPSeeOther("/signin")
        response.del_cookie(COOKIE, path="/")
        raise response

    # -- pages --------------------------------------------------------------
    async def _scope(self, identity: Identity) -> tuple[list[str], str | None]:
        """(clusters the viewer sees, whose jobs: None for everyone's); a removed user is signed out."""
        try:
            return await self.run(viewer_scope, self.scheduler, identity)
        except Unauthenticated:
            raise web.HTTPSeeOther("/signin") from None

    async def _clusters(self, identity: Identity) -> list[str]:
        return (await self._scope(identity))[0]

    def _as(self, identity: Identity) -> tuple[str, str]:
        """(submit token, user token) to hand the scheduler's checks for this viewer."""
        return ("", identity.token) if identity.user else (identity.token, "")

    async def overview(self, request: web.Request) -> web.Response:
        identity = self._require(request)
        names = await self._clusters(identity)
        records = await self.run(self.scheduler.store.list_clusters)
        counts = await self.counts.get()
        wanted = set(names)
        rows = [views.cluster_row(r, self.scheduler.cluster_graph(r.name), counts) for r in records if r.name in wanted]
        return self._render("overview.html", request, clusters=rows, totals=views.totals(counts, names),
                            states=views.STATES, now=time.time())

    async def jobs(self, request: web.Request) -> web.Response:
        identity = self._require(request)
        names, owner = await self._scope(identity)
        query = request.query
        cluster = query.get("cluster", "")
        clusters = tuple(names) if not cluster else (cluster,) if cluster in names else ()
        state = query.get("state", "")
        if state and state not in views.STATES:
            raise web.HTTPBadRequest(text=f"state: unknown state {state!r}")
        sort = query.get("sort", "id")
        if sort not in PAGE_SORTS:
            raise web.HTTPBadRequest(text=f"sort: one of {', '.join(PAGE_SORTS)}")
        descending = query.get("dir", "desc") != "asc"
        after = _after(query.get("after", ""), sort)
        name = query.get("name", "").strip()
        page = JobPage(clusters, JobState(state) if state else None, name or None, sort, descending, after,
                       PAGE_SIZE + 1, owner)
        since = await self.run(self.scheduler.store.last_event_seq)  # before the read: the stream starts there
        started = time.perf_counter()
        rows = await self.run(self.scheduler.store.page_jobs, page)
        db_ms = (time.perf_counter() - started) * 1000
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        shown = {"state": state, "cluster": cluster, "name": name, "sort": sort, "dir": "desc" if descending else "asc"}
        filters = {k: v for k, v in shown.items() if v}
        next_url = ""
        if more:
            last = rows[-1]
            value = getattr(last, sort)
            key = last.id if sort == "id" else [value.value if isinstance(value, JobState) else value, last.id]
            next_url = "/jobs?" + urlencode({**filters, "after": json.dumps(key)})
        template = "jobrows.html" if query.get("fragment") else "jobs.html"
        response = self._render(template, request, jobs=rows, clusters=names, states=views.STATES, sorts=PAGE_SORTS,
                                filters=shown, first_page=after is None, next_url=next_url, since=since,
                                first_url="/jobs?" + urlencode(filters))
        response.headers["Server-Timing"] = f"db;dur={db_ms:.1f}"
        return response

    async def _job(self, request: web.Request, identity: Identity):
        try:
            job_id = int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound(text="no such job") from None
        try:
            return await self.run(self.scheduler.get_job, job_id, *self._as(identity))
        except NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except (PermissionDenied, Unauthenticated) as exc:
            raise web.HTTPForbidden(text=str(exc)) from None

    async def job(self, request: web.Request) -> web.Response:
        identity = self._require(request)
        since = await self.run(self.scheduler.store.last_event_seq)  # before the read: the stream starts there
        job, history = await self._job(request, identity)
        placement = views.placement(await self.run(self.scheduler.store.job_placement, job.id))
        step = await self.run(self.scheduler.store.job_step, job.id)
        return self._render("job.html", request, job=job, history=history, placement=placement, step=step,
                            output=views.output(job), final=views.is_final(job),
                            notice=request.query.get("notice", ""), since=since)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        return await self._act(request, "cancel requested", lambda job, token, user_token: self.scheduler.cancel(
            job.id, token, "cancelled from the dashboard", user_token))

    async def urgency(self, request: web.Request) -> web.StreamResponse:
        """Hold the job, or let it go (its priority back to the default): `rainbow urgency` from the job page."""
        urgency = "hold" if (await request.post()).get("urgency") == "hold" else "default"
        return await self._act(request, "held" if urgency == "hold" else "let go", lambda job, token, user_token:
                               self.scheduler.set_urgency(job.id, token, urgency, user_token))

    async def _act(
        self, request: web.Request, done: str, action: Callable[[JobRecord, str, str], object]
    ) -> web.StreamResponse:
        """A change to one job from its page: checked as every POST is, then back to the page with a notice."""
        identity = await self._form_checked(request)
        job, _ = await self._job(request, identity)
        try:
            token, user_token = self._as(identity)
            await self.run(action, job, token, user_token)
            notice = done
        except FailedPrecondition as exc:
            notice = str(exc)
        except RainbowError as exc:
            raise web.HTTPForbidden(text=str(exc)) from None
        raise web.HTTPSeeOther(f"/jobs/{job.id}?" + urlencode({"notice": notice}))

    async def cluster(self, request: web.Request) -> web.Response:
        identity = self._require(request)
        name = request.match_info["name"]
        if name not in await self._clusters(identity):
            raise web.HTTPNotFound(text="no such cluster (or the token does not open it)")
        record = await self.run(self.scheduler.store.get_cluster, name)
        if record is None:
            raise web.HTTPNotFound(text="no such cluster")
        counts = await self.counts.get()
        row = views.cluster_row(record, self.scheduler.cluster_graph(name), counts, detail=True)
        return self._render("cluster.html", request, cluster=row, now=time.time())

    async def workflow(self, request: web.Request) -> web.Response:
        """A workflow's DAG (server-drawn SVG, every value escaped) and its steps; live like the job table."""
        identity = self._require(request)
        names = await self._clusters(identity)
        token, user_token = self._as(identity)
        pairs = [] if user_token else [(name, token) for name in names]
        if not pairs and not user_token:
            raise web.HTTPNotFound(text="no such workflow (or the token does not open its clusters)")
        since = await self.run(self.scheduler.store.last_event_seq)  # before the read: the stream starts there
        try:
            view = await self.run(self.scheduler.workflow, pairs, request.match_info["id"], user_token)
        except (NotFound, InvalidArgument) as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except (PermissionDenied, Unauthenticated) as exc:
            raise web.HTTPForbidden(text=str(exc)) from None
        steps = [(step.name, job, needs) for step, job, needs in view.steps]
        template = "workflowdag.html" if request.query.get("fragment") else "workflow.html"
        return self._render(template, request, workflow=view.record, steps=steps,
                            layout=views.workflow_layout(steps), since=since)

    # -- live ---------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events, fed by the event tail ``WatchJobs`` reads.

        ``?job=N``: every event of one job (``event: job``), for its page.
        ``?since=SEQ``: start after that event (the page says which; a reconnect's ``Last-Event-ID`` wins).
        ``?view=counts``: only job counts (``event: counts``, every few seconds), for the overview.
        Otherwise, for the job table: the counts, and per batch the newest state of each job
        that changed (``event: states``, ``{id: state}``); a stream sends at most one batch per
        ``STREAM_BATCH_SECONDS``, so a viewer costs the server little however busy it is.
        """
        identity = self._require(request, page=False)
        job_id = int(request.query["job"]) if request.query.get("job", "").isdigit() else None
        with_jobs = job_id is not None or request.query.get("view") != "counts"
        names, owner = await self._scope(identity)
        pairs = [(name, identity.token) for name in names]
        try:
            if identity.user:
                scope, owner = await self.run(self.scheduler.watcher, [], job_id, identity.token)
            else:
                scope = await self.run(self.scheduler.watch_scope, pairs, job_id) if pairs or job_id else []
        except NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except (PermissionDenied, Unauthenticated) as exc:
            raise web.HTTPForbidden(text=str(exc)) from None
        store = self.scheduler.store
        # Where to start: where the stream left off (a reconnect), else where the page was read, else now.
        last_id = request.headers.get("Last-Event-ID", "") or request.query.get("since", "")
        seq = int(last_id) if last_id.isdigit() else await self.run(store.last_event_seq)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        wanted = set(scope) if scope is not None else None

        async def send(events: list[JobEvent]) -> None:
            if job_id is not None:
                text = "".join(f"id: {e.seq}\nevent: job\ndata: {views.event_json(e)}\n\n" for e in events)
            else:
                text = f"id: {events[-1].seq}\nevent: states\ndata: {json.dumps(views.newest_states(events))}\n\n"
            await response.write(text.encode())

        queue, start = await self.broadcast.subscribe() if with_jobs and scope != [] else (None, 0)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            # Catch up from the store (through the shared tail) to where the broadcast started.
            while queue is not None and seq < start:
                events = await self.hub.events_since(seq, scope, job_id, 5000, self._fetch, self._last, owner)
                events = [e for e in events if e.seq <= start]
                if not events:
                    break
                seq = events[-1].seq
                await send(events)
            seq = max(seq, start) if queue is not None else seq
            next_counts = 0.0
            while True:
                now = time.monotonic()
                if now >= next_counts and job_id is None:
                    counts = await self.counts.get()
                    data = {"time": time.time(), "totals": views.totals(counts, names),
                            "load": views.load(counts, names), "clusters": views.by_cluster(counts, names)}
                    await response.write(f"event: counts\ndata: {json.dumps(data)}\n\n".encode())
                    next_counts = now + COUNTS_SECONDS
                try:
                    wait = next_counts - now if job_id is None else STREAM_PING_SECONDS
                    batch = await asyncio.wait_for(queue.get(), wait) if queue is not None else None
                    if batch is None:
                        await asyncio.sleep(wait)
                except asyncio.TimeoutError:
                    batch = None
                if isinstance(batch, Lagging):
                    break
                events = live.visible(batch, wanted, job_id, seq, owner) if batch else []
                if events:
                    seq = events[-1].seq
                    await send(events)
                elif job_id is not None:
                    await response.write(b": ping\n\n")
        except ConnectionResetError:
            log.debug("a live viewer left")
        finally:
            self._streams.discard(task)
            if queue is not None:
                self.broadcast.unsubscribe(queue)
        return response

    async def close(self) -> None:
        """End the live streams (they never end by themselves) and the broadcast."""
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        await self.broadcast.close()


def _static(path: str) -> str:
    return f"/static/{path}"


def _same_origin(request: web.Request) -> None:
    """Refuse a form posted from another site (browsers send ``Origin`` with every POST)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-site request refused")


def _local(target: str) -> str:
    """Only same-site paths as redirect targets (no ``//host`` or ``https://``)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _after(text: str, sort: str) -> tuple[Any, int] | None:
    """The keyset cursor of a ``next`` link; a bad one is a 400, not a server error."""
    if not text:
        return None
    try:
        value = json.loads(text)
        if sort == "id" and isinstance(value, int):
            return (value, value)
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
            return (value[0], value[1])
    except ValueError:
        pass
    raise web.HTTPBadRequest(text="after: not a cursor of this table's order")


def _when(value: float | None) -> str:
    if not value:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def ssl_context(cert: str | None, key: str | None, ca_cert: str | None) -> ssl.SSLContext | None:
    """TLS as the gRPC side has it: the same certificate and key, client certificates when it requires them."""
    if not (cert and key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if ca_cert:
        context.load_verify_locations(ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class WebServer:
    """The dashboard listening on its own address, in the running event loop."""

    def __init__(self, dashboard: Dashboard, address: str, context: ssl.SSLContext | None = None) -> None:
        self.dashboard = dashboard
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--web: expected HOST:PORT, got {address!r}")
        self.host = host.strip("[]")
        self.port = int(port)
        self.context = context
        self._runner = web.AppRunner(dashboard.app, access_log=None, shutdown_timeout=1.0)

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.context, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        return self.port

    async def stop(self) -> None:
        await self.dashboard.close()
        await self._runner.cleanup()
