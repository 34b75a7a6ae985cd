"""The login gateway in front of the Prefect API (issue 18): who is at the keyboard.

The Prefect server of ``dutyflow serve`` and of the production topology is started by our
own module (``deployments/prefect_server.py``), which wraps Prefect's ASGI app in
:class:`Gateway`. Prefect's open-source server knows one shared string and no persons; the
gateway knows the registry's persons:

- **Login on every API path** (``/api/health`` and ``/api/ready`` stay open for probes):
  ``Authorization: Basic`` with a person's id and password (what the Prefect UI's own prompt
  sends when ``person:password`` is typed into it), the service credential (``service:TOKEN``:
  workers, the sweep, the serve process, the CLI), or — when ``DUTYFLOW_TRUSTED_PROXIES`` lists
  a reverse proxy's address — the person named by its identity header
  (``DUTYFLOW_PROXY_HEADER``, default ``X-Dutyflow-User``), refused from any other address.
  Anything else is answered 401; a wrong password costs a delay, and repeated failures lock
  the account (``models/account.py``). Websockets (events, logs) are checked in Prefect's own
  auth handshake, with the same credentials.
- **What a person may do**: read (GET, and the POST queries: filter, count, history, the UI's
  own queries), start a deployment's run (``create_flow_run``), and change the state of the
  runs they started themselves (cancel, retry). Everything else — deployments, schedules, work
  pools, variables, blocks, deleting runs, the server's settings — needs the service credential.
- **The actor is the logged-in person**: a run created through the gateway has its
  ``request.actor`` set to the person (a request naming someone else is refused), and Prefect's
  own ``created_by`` of the run says who and how (``dutyflow:<method>:<person>``); the flow
  checks it again and the audit event records it. The service credential acts as ``system``;
  naming a person is allowed only to the CLI on the server's own machine (a loopback address).
  A deployment registered through the gateway (``prefect deploy``, serve) loses the form's
  ``actor`` field, so no form asks who you are.
- **Nothing stored on a refusal**: a run's parameters are validated with the domain's own
  request model before Prefect sees them; a bad request is answered 422 with the one Chinese
  line the CLI prints, no run is created, and nothing of it is logged.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import threading
from typing import Any
from uuid import UUID

from anyio import to_thread
from prefect.server import models as pm
from prefect.server.api import dependencies
from prefect.server.database import provide_database_interface
from prefect.server.schemas.core import CreatedBy, UpdatedBy
from prefect.server.utilities import subscriptions
from starlette.requests import Request
from starlette.status import WS_1008_POLICY_VIOLATION

from flows.registry import flows, request_model
from deployments.settings import LOOPBACK, login_required, without_actor
from models import authority, policy
from models.account import SERVICE, Login, LoginRefused, is_service, proxied, verify_password
from models.db import session
from models.errors import DomainError
from models.requests import validate_request

log = logging.getLogger("dutyflow.gateway")

OPEN_PATHS = {"/health", "/ready"}
#: POST paths that only read (Prefect's queries), by their last path segment.
READ_SEGMENTS = {"filter", "count", "paginate", "history", "lateness", "next"}
_CREATE_FROM_DEPLOYMENT = re.compile(r"^/deployments/([0-9a-fA-F-]{36})/create_flow_run/?$")
_SET_STATE = re.compile(r"^/flow_runs/([0-9a-fA-F-]{36})/set_state/?$")
_CREATE_RUN = re.compile(r"^/flow_runs/?$")
_DEPLOYMENT_WRITE = re.compile(r"^/deployments(/[0-9a-fA-F-]{36})?/?$")
_SERVICE_ONLY_SOCKETS = ("/events/in", "/task_runs/subscriptions", "/work_pools/")
MAX_BODY = 4 * 1024 * 1024
MAX_SERVICE_BODY = 256 * 1024 * 1024  # a deployment's form: its pickers list every unit and person


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def created_by_type(login: Login) -> str:
    """Prefect's ``created_by.type`` of a run the gateway let through: ``dutyflow:<method>:<person>``."""
    return authority.created_by_type(login.person, login.method)


def login_of_created_by(value: Any) -> Login | None:
    """The :class:`Login` a run's ``created_by`` records (None when the gateway did not create it)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    found = authority.login_from_created_by(kind)
    return Login(person=found[0], method=found[1]) if found else None


# ---------------------------------------------------------------- authentication


class Authenticator:
    """Turns a request's credentials into a :class:`Login` (blocking: DB and Argon2)."""

    def __init__(self) -> None:
        self.verified: set[str] = set()  # fingerprints of passwords already checked in this process
        self.lock = threading.Lock()
        proxies = os.environ.get("DUTYFLOW_TRUSTED_PROXIES", "")
        self.trusted_proxies = {p.strip() for p in proxies.split(",") if p.strip()}
        self.proxy_header = os.environ.get("DUTYFLOW_PROXY_HEADER", "X-Dutyflow-User").lower().encode()

    def from_basic(self, credential: str) -> Login:
        name, sep, password = credential.partition(":")
        if not sep or not name or not password:
            raise LoginRefused("认证信息格式应为 人员编号:口令")
        if name == SERVICE:
            if is_service(password):
                return Login(person=SERVICE, method="service", name="服务凭据")
            raise LoginRefused("服务凭据错误")
        with session() as s:
            return verify_password(s, name, password, verified=self.verified)

    def from_scope(self, scope: dict) -> Login:
        headers = dict(scope.get("headers") or [])
        client = (scope.get("client") or ("", 0))[0]
        named = headers.get(self.proxy_header)
        if named is not None:
            if client not in self.trusted_proxies:
                raise LoginRefused(f"来自 {client} 的身份头不可信（仅接受已配置的反向代理）")
            with session() as s:
                return proxied(s, named.decode("utf-8", "replace").strip())
        auth = headers.get(b"authorization")
        if auth is None:
            raise LoginRefused("未登录")
        scheme, _, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            raise LoginRefused("仅支持 Basic 认证")
        try:
            credential = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise LoginRefused("认证信息不是有效的 Base64") from None
        return self.from_basic(credential)


def _delay() -> float:
    return float(policy.get("login", "failure_delay_seconds", default=1.0))


# ---------------------------------------------------------------- the request of a new run


def _flow_models() -> dict[str, type]:
    return {name: request_model(fl) for name, fl in flows().items()}


_MODELS: dict[str, type] | None = None


def request_models() -> dict[str, type]:
    global _MODELS
    if _MODELS is None:
        _MODELS = _flow_models()
    return _MODELS


def bind_parameters(flow: str, parameters: Any, login: Login, loopback: bool) -> dict:
    """The parameters of a new run of ``flow`` with ``request.actor`` bound to the login,
    validated by the domain's request model; raises :class:`Refusal` (nothing is stored)."""
    model = request_models().get(flow)
    if model is None:
        if login.is_service:
            return parameters
        raise Refusal(403, f"错误：未知流程 '{flow}'")
    if not isinstance(parameters, dict) or not isinstance(parameters.get("request", {}), dict):
        raise Refusal(422, "错误：request: 应为 JSON 对象")
    request = dict(parameters.get("request") or {})
    named = request.get("actor")
    if login.is_service:
        if named not in (None, "", "system") and not loopback:
            raise Refusal(403, "错误：actor: 服务凭据只能以 system 办理；以人员名义办理须在服务器本机使用命令行，或以本人账号登录")
        request["actor"] = named or "system"
    else:
        if named not in (None, "") and named != login.person:
            raise Refusal(403, f"错误：actor: 操作人为登录人本人 {login.name}（{login.person}），不能代他人（{named}）办理")
        request["actor"] = login.person
    try:
        validate_request(model, request)
    except DomainError as exc:
        raise Refusal(422, f"错误：{exc.message}") from None
    return {**parameters, "request": request}


def run_login(login: Login, actor: str, loopback: bool) -> Login:
    """The login a new run records: the CLI on this machine acting as the person it names."""
    if login.is_service and actor not in ("", "system") and loopback:
        return Login(person=actor, method="cli")
    return login


# ---------------------------------------------------------------- Prefect's own records


async def _deployment_flow_name(deployment_id: str) -> str | None:
    async with provide_database_interface().session_context() as s:
        dep = await pm.deployments.read_deployment(s, deployment_id=UUID(deployment_id))
        if dep is None:
            return None
        flow = await pm.flows.read_flow(s, flow_id=dep.flow_id)
        return flow.name if flow is not None else None


async def _flow_name(flow_id: str) -> str | None:
    async with provide_database_interface().session_context() as s:
        flow = await pm.flows.read_flow(s, flow_id=UUID(flow_id))
        return flow.name if flow is not None else None


async def _run_creator(flow_run_id: str) -> Login | None:
    async with provide_database_interface().session_context() as s:
        run = await pm.flow_runs.read_flow_run(s, flow_run_id=UUID(flow_run_id))
        return login_of_created_by(run.created_by) if run is not None else None


# ---------------------------------------------------------------- the ASGI middleware


async def _json(send, status: int, body: dict) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "连接已断开")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"错误：请求过大（超过 {limit // 1024 // 1024} MB）")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """``receive`` giving ``body`` once, then what the client's own connection says (a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _asking_for_login(send):
    """``send`` of the UI's ``/ui-settings`` answer with ``auth: BASIC``: the UI (V1 and V2)
    then shows its own login prompt and sends what is typed there as Basic auth."""
    start: dict = {}
    chunks: list[bytes] = []

    async def wrapped(message):
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        try:
            data = json.loads(body)
            data["auth"] = "BASIC"
            body = json.dumps(data).encode()
        except ValueError:
            pass
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


def _with_body(scope, body: bytes, receive):
    """``receive`` replaying ``body`` in place of the request's own (its length set to match)."""
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
        (b"content-length", str(len(body)).encode())]
    return _replay(body, receive)


async def _forms_without_actor(scope, receive):
    """A deployment registered or updated through the gateway (``prefect deploy``, serve, the
    pickers' refresh): its form loses the ``actor`` field, whoever generated the schema."""
    body = await _read_body(receive, MAX_SERVICE_BODY)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return _replay(body, receive)  # Prefect answers it
    schema = data.get("parameter_openapi_schema") if isinstance(data, dict) else None
    if not isinstance(schema, dict):
        return _replay(body, receive)
    without_actor(schema.get("definitions") or schema.get("$defs") or {})
    return _with_body(scope, json.dumps(data).encode(), receive)


class Gateway:
    """ASGI middleware: login, permissions and run binding for the API under ``prefix``."""

    def __init__(self, app, prefix: str = "/api"):
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.auth = Authenticator()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("/ui-settings"):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]  # plain JSON
            return await self.app(scope, receive, _asking_for_login(send))
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix + "/"):
            return await self.app(scope, receive, send)  # the UI's pages; websockets: Prefect's handshake
        rel = scope["path"][len(self.prefix):]
        method = scope["method"].upper()
        if rel.rstrip("/") in OPEN_PATHS and method in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        try:
            login = await to_thread.run_sync(self.auth.from_scope, scope)
        except LoginRefused as exc:
            log.warning("拒绝登录：%s（%s %s，来自 %s）", exc.reason, method, rel, (scope.get("client") or ("?",))[0])
            await asyncio.sleep(_delay() if exc.reason != "未登录" else 0)
            return await _json(send, 401, {"exception_message": "Unauthorized",
                                           "detail": "请登录：用户名为人员编号，口令为本人口令（连续输错将锁定账号）"})
        scope["dutyflow.login"] = login
        loopback = (scope.get("client") or ("",))[0] in LOOPBACK
        try:
            receive = await self._authorize(scope, receive, method, rel, login, loopback)
        except Refusal as exc:
            return await _json(send, exc.status, {"detail": exc.message, "exception_message": exc.message})
        return await self.app(scope, receive, send)

    async def _authorize(self, scope, receive, method: str, rel: str, login: Login, loopback: bool):
        """Raise :class:`Refusal` unless ``login`` may make this request; a new run's
        parameters are bound and validated (the returned ``receive`` replays the new body)."""
        create = _CREATE_FROM_DEPLOYMENT.match(rel)
        if create or (_CREATE_RUN.match(rel) and method == "POST"):
            if not create and not login.is_service:
                raise Refusal(403, "错误：请从部署（Deployments）发起流程")
            body = await _read_body(receive)
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise Refusal(422, "错误：请求不是有效的 JSON") from None
            if not isinstance(data, dict):
                raise Refusal(422, "错误：请求应为 JSON 对象")
            flow = (await _deployment_flow_name(create.group(1)) if create
                    else await _flow_name(str(data.get("flow_id", ""))) if data.get("flow_id") else None)
            if flow is None and create:
                raise Refusal(404, "错误：未找到该部署")
            if flow is not None:
                params = data.get("parameters") or {}
                data["parameters"] = await to_thread.run_sync(bind_parameters, flow, params, login, loopback)
                actor = (data["parameters"].get("request") or {}).get("actor", "")
                scope["dutyflow.login"] = run_login(login, actor, loopback)
            return _with_body(scope, json.dumps(data).encode(), receive)
        if login.is_service:
            if method in ("POST", "PATCH") and _DEPLOYMENT_WRITE.match(rel):
                return await _forms_without_actor(scope, receive)
            return receive
        if method in ("GET", "HEAD"):
            if rel.startswith("/admin/settings"):
                raise Refusal(403, "服务器设置仅对管理员（服务凭据）开放")
            return receive
        segments = [p for p in rel.split("/") if p]
        if method == "POST" and (segments[:1] == ["ui"] or (segments and segments[-1] in READ_SEGMENTS)
                                 or "count-by" in segments):
            return receive
        state = _SET_STATE.match(rel)
        if state and method == "POST":
            creator = await _run_creator(state.group(1))
            if creator is None or creator.person != login.person:
                raise Refusal(403, "只能更改本人发起的流程运行的状态（取消、重试）")
            return receive
        raise Refusal(403, "此操作须由管理员以服务凭据办理（登录人员可查看、发起流程、取消或重试本人发起的运行）")


# ---------------------------------------------------------------- Prefect's websockets and created_by


def install(app) -> None:
    """Put the gateway into a Prefect server app made by ``create_app``: the ASGI wrapper is
    returned by :func:`wrap`; here the websocket handshake and ``created_by`` are taken over."""
    authenticator = Authenticator()

    def created_by(request: Request) -> CreatedBy | None:
        login = request.scope.get("dutyflow.login")
        if login is None:
            return None
        how = authority.LOGIN_METHODS.get(login.method, login.method)
        return CreatedBy(type=created_by_type(login), display_value=f"{login.name or login.person}（{how}）")

    def updated_by(request: Request) -> UpdatedBy | None:
        who = created_by(request)
        return UpdatedBy(**who.model_dump()) if who is not None else None

    app.api_app.dependency_overrides[dependencies.get_created_by] = created_by
    app.api_app.dependency_overrides[dependencies.get_updated_by] = updated_by

    async def accept_prefect_socket(websocket, *, require_prefect_subprotocol: bool = False,
                                    authentication_failed_reason: str | None = None):
        """Prefect's websocket handshake with the gateway's credentials: the ``prefect``
        subprotocol and an ``auth`` message whose token is ``person:password`` or the service's."""
        protocols = [p.strip() for h in websocket.headers.getlist("Sec-WebSocket-Protocol") for p in h.split(",")]
        if "prefect" not in protocols:
            return await websocket.close(WS_1008_POLICY_VIOLATION, reason="login required")
        await websocket.accept(subprotocol="prefect")
        try:
            message = await websocket.receive_json()
            token = message.get("token") if isinstance(message, dict) and message.get("type") == "auth" else None
            if not isinstance(token, str):
                return await websocket.close(WS_1008_POLICY_VIOLATION, reason="login required")
            try:
                login = await to_thread.run_sync(authenticator.from_basic, token)
            except LoginRefused as exc:
                log.warning("拒绝登录（websocket %s）：%s", websocket.scope.get("path"), exc.reason)
                await asyncio.sleep(_delay())
                return await websocket.close(WS_1008_POLICY_VIOLATION, reason="login required")
            path = websocket.scope.get("path", "")
            if not login.is_service and any(p in path for p in _SERVICE_ONLY_SOCKETS):
                return await websocket.close(WS_1008_POLICY_VIOLATION, reason="service credential required")
            await websocket.send_json({"type": "auth_success"})
            return websocket
        except subscriptions.NORMAL_DISCONNECT_EXCEPTIONS:
            return None

    subscriptions.accept_prefect_socket = accept_prefect_socket


def wrap(app):
    """``create_app``'s app behind the gateway (login on), or as it is (``DUTYFLOW_LOGIN=off``)."""
    if not login_required():
        log.warning("DUTYFLOW_LOGIN=off：API 不要求登录，任何能访问端口的人都能以任何人的名义办理")
        return app
    install(app)
    gateway = Gateway(app)
    gateway.api_app = app.api_app  # what callers of create_app read
    return gateway

