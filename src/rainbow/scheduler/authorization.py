"""Authorization: every request's credentials are checked here, and only here.

Each check takes the credentials one kind of caller presents and returns what
that caller may act on, or raises: PermissionDenied for a wrong or missing
secret or token, NotFound for a cluster or job that does not exist,
InvalidArgument for a malformed name.

==================  ===========================  ==================================
caller              credentials                  allowed to act on
==================  ===========================  ==================================
registrar           the registration secret      registering a new cluster
cluster agent       cluster name + its secret    that cluster (``ClusterEntry``)
submitter           (cluster name, token) pairs  those clusters (their names)
job reader          a job id + a token           that job (``JobRecord``)
token holder        a token                      the clusters it opens (the dashboard)
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
from collections.abc import Sequence

from rainbow import credentials
from rainbow.errors import InvalidArgument, NotFound, PermissionDenied
from rainbow.scheduler.context import SchedulerContext
from rainbow.scheduler.registry import ClusterEntry, ClusterRegistry
from rainbow.scheduler.validation import check_name
from rainbow.store import JobRecord


class Authorization:
    def __init__(self, context: SchedulerContext, registry: ClusterRegistry) -> None:
        self.context = context
        self.registry = registry

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
        (``[]``): it is a valid credential with nothing to show yet.
        """
        if not token:
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

    def dependency_parents(self, job_ids: Sequence[int], token_hashes: Sequence[str], field: str) -> None:
        """Allow depending on these jobs: each exists and the submitter's tokens open it (as GetJob would).

        InvalidArgument names the jobs that do not exist; PermissionDenied those the tokens do not open.
        """
        store = self.context.store
        jobs = {job_id: store.get_job(job_id) for job_id in dict.fromkeys(job_ids)}
        unknown = [str(job_id) for job_id, job in jobs.items() if job is None]
        if unknown:
            raise InvalidArgument(f"{field}: unknown job {', '.join(unknown)}", field=field)
        hidden = [str(job_id) for job_id, job in jobs.items()
                  if job is not None and not self.can_read(job, token_hashes)]
        if hidden:
            raise PermissionDenied(f"{field}: your tokens do not open job {', '.join(hidden)}", field=field)

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
