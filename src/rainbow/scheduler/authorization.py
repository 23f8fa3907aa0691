"""Authorization: every request's credentials are checked here, and only here.

Each check takes the credentials one kind of caller presents and returns what
that caller may act on, or raises: PermissionDenied for a wrong or missing
secret or token, NotFound for a cluster or job that does not exist,
InvalidArgument for a malformed name.

Users: a request may carry a user token (``authorization: Bearer TOKEN``
metadata): a rainbow user's token, or a JWT signed by the configured OIDC
provider. It makes the caller a ``Principal`` (a user, their groups, whether
an admin). A wrong or missing user credential is UNAUTHENTICATED; a user
asking for what they may not do is PERMISSION_DENIED. A request without one is
today's request (cluster tokens, the global token), acting as the legacy
identity (``legacy_user``; None refuses such requests).

==================  ===========================  ==================================
caller              credentials                  allowed to act on
==================  ===========================  ==================================
registrar           the registration secret      registering a new cluster
cluster agent       cluster name + its secret    that cluster (``ClusterEntry``)
submitter           (cluster name, token) pairs  those clusters (their names)
job reader          a job id + a token           that job (``JobRecord``)
token holder        a token                      the clusters it opens (the dashboard)
user                a user token (Bearer)        their own jobs; every cluster they may use
admin user          an admin's user token        every job; managing users and cluster access
operator            the registration secret      managing users and cluster access
dependent job       its submitter's token hashes the jobs it may depend on; the clusters
                                                 it may be placed on when released
==================  ===========================  ==================================

A token opens a cluster when it is that cluster's submit token (the global
token, when the server has one, is every cluster's). A job that waits for its
dependencies keeps the hashes of the tokens it was submitted with (never the
tokens): when it is released it may go to any cluster those tokens open then,
a cluster registered after the submission included.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rainbow import credentials
from rainbow.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from rainbow.oidc import ALGORITHMS, OIDCKeys, claim_groups, looks_like_jwt
from rainbow.scheduler.context import SchedulerContext
from rainbow.scheduler.registry import ClusterEntry, ClusterRegistry
from rainbow.scheduler.validation import check_name
from rainbow.store import AccessRule, JobRecord, UserRecord

DEFAULT_LEGACY_USER = "legacy"
# How long a looked-up user token is trusted without reading the store again. This server's own changes
# (a removed user, a new token) take effect at once; another replica's within this time.
USER_CACHE_SECONDS = 2.0
_USER_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (user token or OIDC JWT), an operator, or the legacy identity of a request
    without a user token (``legacy``; ``clusters_scope`` are the clusters its tokens open)."""

    user: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    legacy: bool = False
    clusters_scope: tuple[str, ...] | None = None

    @property
    def group(self) -> str:
        """The group this principal's jobs are accounted to: the first of its groups, or ''."""
        return self.groups[0] if self.groups else ""

    @property
    def owner_filter(self) -> str | None:
        """Whose jobs this principal sees: its own (a user), or anyone's (None: admins; legacy callers
        within the clusters their tokens open)."""
        return None if self.admin or self.legacy else self.user


@dataclass(frozen=True)
class SubmitterScope:
    """What a dependent job's submitter may read and use, kept with the job until it is released.

    Without a user token: the hashes of the submit tokens presented (they open jobs and clusters as GetJob
    and SubmitJob check them). With one: the user, their groups and whether they are an admin, as they
    were at submit (an OIDC user exists only in the token, so nothing is looked up again).
    """

    token_hashes: tuple[str, ...] = ()
    user: str = ""
    groups: tuple[str, ...] = ()
    admin: bool = False

    def to_plan(self) -> dict[str, Any]:
        if self.user:
            return {"user": self.user, "groups": list(self.groups), "admin": self.admin}
        return {"tokens": list(self.token_hashes)}

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any]) -> SubmitterScope:
        return cls(tuple(plan.get("tokens") or ()), str(plan.get("user") or ""),
                   tuple(plan.get("groups") or ()), bool(plan.get("admin")))


def may_use(rules: Sequence[AccessRule], user: str, groups: Sequence[str]) -> bool:
    """Whether a user (with groups) may use a cluster with these access rules.

    A deny naming the user or one of their groups wins; otherwise a cluster with
    allow rules is open to those they name only; a cluster without any is open to all.
    """
    subjects = {("user", user), *(("group", group) for group in groups)}
    if any(not rule.allow and (rule.kind, rule.name) in subjects for rule in rules):
        return False
    allowed = [rule for rule in rules if rule.allow]
    return not allowed or any((rule.kind, rule.name) in subjects for rule in allowed)


class Authorization:
    def __init__(
        self,
        context: SchedulerContext,
        registry: ClusterRegistry,
        legacy_user: str | None = DEFAULT_LEGACY_USER,
        oidc: OIDCKeys | None = None,
    ) -> None:
        self.context = context
        self.registry = registry
        self.legacy_user = legacy_user
        self.oidc = oidc
        self._users: dict[str, tuple[float, Principal | None]] = {}
        self._users_lock = threading.Lock()

    def registrar(self, secret: str) -> None:
        """Allow registering a cluster with the registration secret.

        On a shared store a replica started with a new ``--secret`` may have
        replaced it since this one read it, so a mismatch is checked again
        against the store.
        """
        if credentials.check_secret(secret, self.registry.registration_hash):
            return
        if self.context.store.shared and secret and credentials.check_secret(
                secret, self.registry.reload_registration_hash()):
            return
        raise PermissionDenied("wrong or missing registration secret", field="secret")

    def cluster_agent(self, name: str, secret: str) -> ClusterEntry:
        """The cluster whose secret this is (its agent acts for it)."""
        check_name(name, "cluster", self.context.limits)
        if not secret:
            raise PermissionDenied("a cluster secret is required", field="secret")
        self.registry.sync_clusters([name])
        with self.registry.lock:
            cluster = self.registry.get(name)
        if cluster is None:
            raise NotFound(f"cluster {name!r} is not registered", field="cluster")
        if not credentials.check_secret(secret, cluster.secret_hash):
            raise PermissionDenied(f"wrong secret for cluster {name!r}", field="secret")
        return cluster

    def submitter(self, clusters: Sequence[tuple[str, str]]) -> list[str]:
        """Names of the listed clusters (each once, in order), each checked against its submit token."""
        if not clusters:
            raise InvalidArgument("clusters: at least one cluster (name and token) is required", field="clusters")
        limits = self.context.limits
        names: dict[str, None] = {}
        hashes: dict[str, str] = {}  # a request usually lists one token (the global one) many times
        self.registry.sync_clusters([name for name, _ in clusters if name])
        with self.registry.lock:
            for index, (name, token) in enumerate(clusters):
                if not name or len(name) > limits.max_name_length or not name.strip():
                    check_name(name, f"clusters[{index}]", limits)
                if not token:
                    raise PermissionDenied(f"clusters[{index}]: a token is required for {name!r}", field="token")
                token_hash = hashes.get(token)
                if token_hash is None:
                    token_hash = hashes[token] = credentials.hash_secret(token)
                cluster = self.registry.get(name)
                if cluster is None:
                    raise NotFound(f"cluster {name!r} is not registered", field=f"clusters[{index}]")
                if not hmac.compare_digest(token_hash, cluster.token_hash):
                    raise PermissionDenied(f"wrong token for cluster {name!r}", field="token")
                names[name] = None
        return list(names)

    def token_scope(self, token: str) -> list[str] | None:
        """The registered clusters a submit token opens, or None when it opens nothing at all.

        The global token opens every cluster, also while none is registered
        (``[]``): it is a valid credential with nothing to show yet. A server
        that refuses requests without a user token (no legacy identity) opens nothing for one.
        """
        if not token or self.legacy_user is None:
            return None
        token_hash = credentials.hash_secret(token)
        self.registry.sync_clusters()
        with self.registry.lock:
            opened = [name for name in self.registry.names
                      if hmac.compare_digest(token_hash, self.registry.get(name).token_hash)]
        if opened:
            return opened
        global_token = self.registry.global_token
        if global_token and hmac.compare_digest(token_hash, credentials.hash_secret(global_token)):
            return []
        return None

    def job_reader(self, job_id: int, token: str) -> JobRecord:
        """The job, when the token opens its cluster or any cluster it could have been placed on
        (a re-placed job stays visible to whoever submitted it)."""
        job = self.context.store.get_job(job_id) if job_id > 0 else None
        if job is None:
            raise NotFound(f"job {job_id} does not exist", field="jobid")
        if not token or not self.can_read(job, [credentials.hash_secret(token)]):
            raise PermissionDenied(f"the token does not open job {job_id}", field="token")
        return job

    def can_read(self, job: JobRecord, token_hashes: Sequence[str]) -> bool:
        """Whether any of these tokens (hashed) opens the job: the rule of ``job_reader`` (GetJob)."""
        self.registry.sync_clusters([job.cluster, *job.candidates])
        with self.registry.lock:
            hashes = [entry.token_hash for c in (job.cluster, *job.candidates)
                      if (entry := self.registry.get(c)) is not None]
        return any(hmac.compare_digest(mine, h) for mine in token_hashes for h in hashes)

    @staticmethod
    def token_hashes(clusters: Sequence[tuple[str, str]]) -> list[str]:
        """The hashes of the tokens a submitter presented (what a dependent job keeps, see the module doc)."""
        return sorted({credentials.hash_secret(token) for _, token in clusters if token})

    def submitter_scope(self, principal: Principal, clusters: Sequence[tuple[str, str]]) -> SubmitterScope:
        """What a submitter of dependent jobs may read and use: its tokens (no user token) or its user."""
        if principal.legacy:
            return SubmitterScope(tuple(self.token_hashes(clusters)))
        return SubmitterScope(user=principal.user, groups=principal.groups, admin=principal.admin)

    def scope_reads(self, job: JobRecord, scope: SubmitterScope) -> bool:
        """Whether the scope opens the job: GetJob's rule for its tokens, or the user's own job (an admin: any)."""
        if scope.user:
            return scope.admin or job.user == scope.user
        return self.can_read(job, scope.token_hashes)

    def scope_clusters(self, scope: SubmitterScope) -> tuple[list[str], dict[str, str]]:
        """The registered clusters the scope may use now: where a released job may go (a cluster registered
        after the submit included); and, for a user, those the user may not use, with why (as SubmitJob
        names them)."""
        if not scope.user:
            return self.clusters_opened(scope.token_hashes), {}
        self.registry.sync_clusters()
        usable: list[str] = []
        excluded: dict[str, str] = {}
        with self.registry.lock:
            for name in self.registry.names:
                if may_use(self.registry.get(name).access, scope.user, scope.groups):
                    usable.append(name)
                else:
                    excluded[name] = f"user {scope.user} may not use this cluster (its access rules)"
        return usable, excluded

    def dependency_parents(self, job_ids: Sequence[int], scope: SubmitterScope, field: str) -> None:
        """Allow depending on these jobs: each exists and the submitter may read it (as GetJob would).

        InvalidArgument names the jobs that do not exist; PermissionDenied those the submitter may not read.
        """
        store = self.context.store
        jobs = {job_id: store.get_job(job_id) for job_id in dict.fromkeys(job_ids)}
        unknown = [str(job_id) for job_id, job in jobs.items() if job is None]
        if unknown:
            raise InvalidArgument(f"{field}: unknown job {', '.join(unknown)}", field=field)
        hidden = [str(job_id) for job_id, job in jobs.items()
                  if job is not None and not self.scope_reads(job, scope)]
        if hidden:
            whose = f"job {', '.join(hidden)} belongs to another user" if scope.user else \
                f"your tokens do not open job {', '.join(hidden)}"
            raise PermissionDenied(f"{field}: {whose}", field=field)

    def clusters_opened(self, token_hashes: Sequence[str]) -> list[str]:
        """The registered clusters these tokens (hashed) open now: where a released job may go, and which
        clusters' jobs a workflow's submitter sees (a step may run on a cluster registered after the submit)."""
        self.registry.sync_clusters()
        with self.registry.lock:
            return [name for name in self.registry.names
                    if any(hmac.compare_digest(self.registry.get(name).token_hash, h) for h in token_hashes)]

    def watch_scope(self, clusters: Sequence[tuple[str, str]], job_id: int | None) -> list[str] | None:
        """Clusters whose events a watcher may see; None for one job (it follows the job anywhere)."""
        if not job_id:
            return self.submitter(clusters)
        for _, token in clusters:
            try:
                self.job_reader(job_id, token)
                return None
            except PermissionDenied:
                continue
        self.job_reader(job_id, "")
        return None

    # -- users ------------------------------------------------------------------
    def legacy(self) -> Principal:
        """The identity of a request without a user token; Unauthenticated when the server refuses those."""
        if self.legacy_user is None:
            raise Unauthenticated("a user token is required (authorization: Bearer TOKEN): this server takes no "
                                  "requests without one", field="authorization")
        return Principal(self.legacy_user, legacy=True)

    def user(self, bearer: str) -> Principal:
        """The user a user token (or an OIDC JWT) names; Unauthenticated when it names nobody."""
        if not bearer:
            raise Unauthenticated("a user token is required (authorization: Bearer TOKEN)", field="authorization")
        token_hash = credentials.hash_secret(bearer)
        now = time.monotonic()
        cached = self._users.get(token_hash)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = self._oidc_user(bearer) if self.oidc is not None and looks_like_jwt(bearer) else \
                _principal(self.context.store.user_by_token(token_hash))
            with self._users_lock:
                if len(self._users) >= _USER_CACHE_SIZE:
                    self._users.clear()
                self._users[token_hash] = (now + USER_CACHE_SECONDS, principal)
        if principal is None:
            raise Unauthenticated("the user token is not valid (unknown, replaced, or its user was removed)",
                                  field="authorization")
        return principal

    def knows(self, bearer: str) -> bool:
        """Whether a user token was looked up lately (checking it again needs no store read)."""
        cached = self._users.get(credentials.hash_secret(bearer))
        return cached is not None and cached[0] > time.monotonic()

    def forget_users(self) -> None:
        """Drop looked-up tokens: a user or token changed here takes effect on the next request."""
        with self._users_lock:
            self._users.clear()

    def _oidc_user(self, token: str) -> Principal | None:
        """The user of a JWT the provider signed (an admin when a rainbow user of that name is one)."""
        assert self.oidc is not None
        settings = self.oidc.settings
        key = self.oidc.signing_key(token)
        jwt = self.oidc.jwt
        try:
            claims = jwt.decode(token, key, algorithms=list(ALGORITHMS), audience=settings.audience,
                                issuer=settings.issuer, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the OIDC token has expired", field="authorization") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the OIDC token is not for audience {settings.audience!r}",
                                  field="authorization") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"the OIDC token is not from issuer {settings.issuer!r}",
                                  field="authorization") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the OIDC token's signature does not verify", field="authorization") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the OIDC token is not valid ({exc})", field="authorization") from None
        name = claims.get(settings.user_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"the OIDC token has no {settings.user_claim!r} claim", field="authorization")
        stored = self.context.store.get_user(name)
        return Principal(name, claim_groups(claims.get(settings.groups_claim)), bool(stored and stored.admin))

    def operator(self, secret: str, bearer: str) -> Principal:
        """Who may manage users and cluster access: the registration secret, or an admin's user token."""
        if secret:
            try:
                self.registrar(secret)
            except PermissionDenied:
                raise Unauthenticated("wrong registration secret", field="secret") from None
            return Principal("", admin=True)
        if not bearer:
            raise Unauthenticated("the registration secret (--secret) or an admin's user token is required",
                                  field="secret")
        principal = self.user(bearer)
        if not principal.admin:
            raise PermissionDenied(f"user {principal.user!r} is not an admin", field="authorization")
        return principal

    def cluster_manager(self, cluster: str, secret: str, bearer: str) -> ClusterEntry:
        """Who may set a cluster's access rules: its own secret, the registration secret, or an admin."""
        check_name(cluster, "cluster", self.context.limits)
        self.registry.sync_clusters([cluster])
        with self.registry.lock:
            entry = self.registry.get(cluster)
        if entry is None:
            raise NotFound(f"cluster {cluster!r} is not registered", field="cluster")
        if secret:
            if credentials.check_secret(secret, entry.secret_hash):
                return entry
            try:
                self.registrar(secret)
            except PermissionDenied:
                raise Unauthenticated(f"wrong secret: neither cluster {cluster!r}'s secret nor the registration "
                                      "secret", field="secret") from None
            return entry
        if not bearer:
            raise Unauthenticated(f"cluster {cluster!r}'s secret, the registration secret or an admin's user token "
                                  "is required", field="secret")
        principal = self.user(bearer)
        if not principal.admin:
            raise PermissionDenied(f"user {principal.user!r} is not an admin", field="authorization")
        return entry

    def submit_scope(
        self, clusters: Sequence[tuple[str, str]], bearer: str
    ) -> tuple[Principal, list[str], dict[str, str]]:
        """Who submits, the clusters their job may go to, and the clusters left out (with why).

        Without a user token: the legacy identity and the listed clusters, each checked against its token.
        With one: the listed clusters (names only; each must be one the user may use), else every
        registered cluster the user may use.
        """
        if not bearer:
            principal = self.legacy()
            names = self.submitter(clusters)
            return Principal(principal.user, legacy=True, clusters_scope=tuple(names)), names, {}
        principal = self.user(bearer)
        listed = list(dict.fromkeys(name for name, _ in clusters))
        for index, name in enumerate(listed):
            check_name(name, f"clusters[{index}]", self.context.limits)
        self.registry.sync_clusters(listed or None)
        with self.registry.lock:
            if listed:
                for index, name in enumerate(listed):
                    entry = self.registry.get(name)
                    if entry is None:
                        raise NotFound(f"cluster {name!r} is not registered", field=f"clusters[{index}]")
                    if not may_use(entry.access, principal.user, principal.groups):
                        raise PermissionDenied(f"user {principal.user!r} may not use cluster {name!r}",
                                               field=f"clusters[{index}]")
                return principal, listed, {}
            usable: list[str] = []
            excluded: dict[str, str] = {}
            for name in self.registry.names:
                if may_use(self.registry.get(name).access, principal.user, principal.groups):
                    usable.append(name)
                else:
                    excluded[name] = f"user {principal.user} may not use this cluster (its access rules)"
        if not usable and excluded:
            raise PermissionDenied(f"user {principal.user!r} may use none of the registered clusters",
                                   field="clusters")
        if not usable:
            raise FailedPrecondition("no cluster is registered", field="clusters")
        return principal, usable, excluded

    def usable_clusters(self, bearer: str) -> tuple[list[str] | None, dict[str, str]]:
        """For a satisfy check: the clusters a user may use and why the others are left out; (None, {})
        without a user token (every cluster, as before users)."""
        if not bearer:
            return None, {}
        _, usable, excluded = self.submit_scope((), bearer)
        return usable, excluded

    def reader(self, clusters: Sequence[tuple[str, str]], bearer: str) -> tuple[list[str] | None, str | None]:
        """The jobs a lister may see: (clusters, None: all; the owner, None: anyone).

        Without a user token the listed clusters' tokens decide, as before users; a user sees their own
        jobs (of the listed clusters, when some are listed), an admin everyone's.
        """
        if not bearer:
            self.legacy()
            return self.submitter(clusters), None
        principal = self.user(bearer)
        listed = list(dict.fromkeys(name for name, _ in clusters))
        for index, name in enumerate(listed):
            check_name(name, f"clusters[{index}]", self.context.limits)
        return (listed or None), principal.owner_filter

    def job_owner(self, job_id: int, token: str, bearer: str) -> JobRecord:
        """The job, when the caller may read or cancel it: its token opens the job's clusters (no user
        token), or it is the user's own job, or the user is an admin."""
        if not bearer:
            self.legacy()
            return self.job_reader(job_id, token)
        principal = self.user(bearer)
        job = self.context.store.get_job(job_id) if job_id > 0 else None
        if job is None:
            raise NotFound(f"job {job_id} does not exist", field="jobid")
        if not principal.admin and job.user != principal.user:
            raise PermissionDenied(f"job {job_id} belongs to another user", field="jobid")
        return job

    def watcher(
        self, clusters: Sequence[tuple[str, str]], job_id: int | None, bearer: str
    ) -> tuple[list[str] | None, str | None]:
        """What a watcher may see: (clusters, None: all; the owner, None: anyone); one job follows it anywhere."""
        if not bearer:
            self.legacy()
            return self.watch_scope(clusters, job_id), None
        if job_id:
            self.job_owner(job_id, "", bearer)
            return None, None
        return self.reader(clusters, bearer)


def _principal(record: UserRecord | None) -> Principal | None:
    return None if record is None else Principal(record.name, record.groups, record.admin)
