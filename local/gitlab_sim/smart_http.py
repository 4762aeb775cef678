"""Git smart HTTP (dulwich's WSGI app) for the simulator's projects, with GitLab's auth
(HTTP Basic with any user name and a personal access token as password, e.g. ``oauth2``)
and GitLab's pre-receive rules: protected branches and hidden ``refs/merge-requests``."""

from __future__ import annotations

import base64
import gzip
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from dulwich.errors import HookError
from dulwich.object_store import BaseObjectStore, GraphTraversalReachability
from dulwich.objects import ObjectID, ShaFile
from dulwich.protocol import CAPABILITY_FILTER, CAPABILITY_PUSH_OPTIONS
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import (
    Backend,
    BackendRepo,
    DictBackend,
    ReceivePackHandler,
    UploadPackHandler,
)
from dulwich.web import HTTPGitApplication

from local.gitlab_sim.models import REPORTER, Project, User
from local.gitlab_sim.pushes import (
    CommitGraph,
    PushOptions,
    PushService,
    RefUpdate,
    commit_graph,
)
from local.gitlab_sim.store import NotFound, Store

GIT_PATH = re.compile(r"^/(?P<project>.+?)\.git(?P<rest>/.*)$")
MAX_PUSH_BYTES = 256 * 1024 * 1024

StartResponse = Any


def is_git_request(path: str) -> bool:
    return GIT_PATH.match(path) is not None


class _UpdateCheck:
    """Plays git's ``update`` hook for dulwich: refuses a ref the user may not move."""

    def __init__(self, pushes: PushService, project: Project, user: User) -> None:
        self.pushes, self.project, self.user = pushes, project, user

    def execute(self, ref: bytes, old: bytes, new: bytes) -> tuple[bytes, bytes]:
        reason = self.pushes.refuse_update(
            self.project, self.user, ref.decode(), old.decode(), new.decode()
        )
        if reason:
            raise HookError(reason)
        return b"", b""


class _PostReceive:
    """Plays git's ``post-receive`` hook as GitLab's does: it queues the push's effects on
    MRs, pipelines and hooks (GitLab's ``PostReceive`` job), and the push is answered."""

    def __init__(
        self, pushes: PushService, project: Project, user: User, options: list[str]
    ) -> None:
        self.pushes, self.project, self.user = pushes, project, user
        self.options = options

    def execute(self, updates: Sequence[tuple[bytes, bytes, bytes]]) -> bytes:
        moved: list[RefUpdate] = [(o.decode(), n.decode(), r.decode()) for o, n, r in updates]
        self.pushes.after_push(self.project, self.user, moved, PushOptions.parse(self.options))
        return b""


class _ReceivePack(ReceivePackHandler):
    """receive-pack with the ``push-options`` capability, which dulwich's server lacks: the
    options follow the ref commands' flush-pkt as pkt-lines up to another flush (git's
    pack-protocol), before the pack. They go to ``options``, which post-receive reads, as
    git hands them to its hooks."""

    def __init__(self, options: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._options = options

    def capabilities(self) -> Iterable[bytes]:
        return [*super().capabilities(), CAPABILITY_PUSH_OPTIONS]

    def _on_pre_receive(self, client_refs: list[tuple[ObjectID, ObjectID, Ref]]) -> None:
        if self.has_capability(CAPABILITY_PUSH_OPTIONS):
            for line in iter(self.proto.read_pkt_line, None):
                self._options.append(line.rstrip(b"\n").decode("utf-8", "replace"))
        super()._on_pre_receive(client_refs)


class _GraphStore:
    """The repository's object store as upload-pack sees it, with the commit graph the
    simulator keeps in memory (``pushes.CommitGraph``). Without it dulwich finds what a
    fetch lacks by reading every commit of the history behind the client's haves from
    its object files, at every fetch."""

    def __init__(self, store: BaseObjectStore, graph: CommitGraph) -> None:
        self._store, self._graph = store, graph

    def get_commit_graph(self) -> CommitGraph:
        return self._graph

    def get_reachability_provider(self, prefer_bitmaps: bool = True) -> GraphTraversalReachability:
        return GraphTraversalReachability(self)  # type: ignore[arg-type]

    def __contains__(self, sha: ObjectID) -> bool:
        return sha in self._store

    def __getitem__(self, sha: ObjectID) -> ShaFile:
        return self._store[sha]

    def __iter__(self) -> Iterator[ObjectID]:
        return iter(self._store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _ServedRepo:
    """The repository as the smart HTTP handlers see it: itself, but with ``_GraphStore``
    for finding a fetch's objects, and refs to commits peeled from the commit graph
    rather than by reading each commit (every ref advertisement peels every ref)."""

    def __init__(self, repo: Repo, graph: CommitGraph) -> None:
        self._repo, self._graph = repo, graph
        self._graph_store = _GraphStore(repo.object_store, graph)

    def find_missing_objects(self, *args: Any, **kwargs: Any) -> Any:
        # dulwich's own logic (wants, haves, shallow) over the graph-backed store.
        view = _FindingView(self._repo, self._graph_store)
        return Repo.find_missing_objects(view, *args, **kwargs)  # type: ignore[arg-type]

    def get_peeled(self, ref: Ref) -> ObjectID:
        sha = self._repo.refs[ref]
        if self._graph.knows(sha):
            return sha
        peeled: ObjectID = self._repo.get_peeled(ref)
        return peeled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


class _FindingView:
    """What ``Repo.find_missing_objects`` reads of a repository."""

    def __init__(self, repo: Repo, store: _GraphStore) -> None:
        self._repo, self.object_store = repo, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


@dataclass
class GitHttp:
    store: Store
    pushes: PushService

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = GIT_PATH.match(environ.get("PATH_INFO", ""))
        assert match is not None
        user = self._user(environ)
        try:
            project = self.store.project(match["project"], user)
        except NotFound:
            project = None
        if project is None and user is None:
            return self._challenge(start_response)
        if project is None or user is None:
            if user is None:
                return self._challenge(start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"The project you were looking for could not be found."]
        if self.store.access_level(project, user) < REPORTER and project.visibility != "public":
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"You are not allowed to download code from this project."]
        environ = self._buffered(environ)
        environ["PATH_INFO"] = match["rest"]
        # The smart HTTP handlers touch refs and objects the REST side also writes, and the
        # hooks below belong to this request's user.
        with self.store.lock:
            repo = self.store.repo(project.id)
            repo.hooks["update"] = _UpdateCheck(self.pushes, project, user)  # type: ignore[assignment]
            options: list[str] = []
            repo.hooks["post-receive"] = _PostReceive(self.pushes, project, user, options)  # type: ignore[assignment]
            served = _ServedRepo(repo, commit_graph(repo))
            repos: dict[str, BackendRepo] = {"/": served}
            backend: Backend = DictBackend(repos)
            app = HTTPGitApplication(
                backend,
                handlers={
                    b"git-upload-pack": _UploadPack,
                    b"git-receive-pack": partial(_ReceivePack, options),
                },
            )
            try:
                return list(app(environ, start_response))
            finally:
                repo.hooks.pop("update", None)
                repo.hooks.pop("post-receive", None)

    def _user(self, environ: dict[str, Any]) -> User | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Basic "):
            try:
                _, _, token = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            return self.store.user_for_token(token)
        if header.startswith("Bearer "):
            return self.store.user_for_token(header[7:])
        return None

    @staticmethod
    def _challenge(start_response: StartResponse) -> list[bytes]:
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="GitLab"')],
        )
        return [b"HTTP Basic: Access denied."]

    @staticmethod
    def _buffered(environ: dict[str, Any]) -> dict[str, Any]:
        """Reads the request body whole: the server may have de-chunked it already, and
        git gzips large requests."""
        environ = dict(environ)
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(min(int(length), MAX_PUSH_BYTES))
        elif environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING"):
            body = stream.read(MAX_PUSH_BYTES)
        else:
            body = b""
        if environ.pop("HTTP_CONTENT_ENCODING", "") == "gzip":
            body = gzip.decompress(body)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        return environ


class _UploadPack(UploadPackHandler):
    """Upload-pack without partial clone. dulwich only serves wants that are ref tips, so the
    lazy single-blob fetches of a ``--filter=blob:none`` clone (marge-bot clones that way)
    would fail; clients are told there is no ``filter`` and always get whole packs."""

    def capabilities(self) -> list[bytes]:
        return [c for c in super().capabilities() if c != CAPABILITY_FILTER]

    def set_client_capabilities(self, caps: Iterable[bytes]) -> None:
        super().set_client_capabilities(
            [c for c in caps if c != CAPABILITY_FILTER and not c.startswith(b"filter=")]
        )

    @property
    def filter_spec(self) -> None:
        return None

    @filter_spec.setter
    def filter_spec(self, _value: object) -> None:
        """Ignored: see the class docstring."""
