"""An OpenAI-compatible HTTP API over any local model.

``oversight serve --model SPEC`` puts a local model (``default``, ``hf:<dir>``, a GGUF
file) behind the endpoints that vLLM and the OpenAI API share, so tools written for
those (including our own ``openai:`` backend) can score and generate with it:

* ``GET /v1/models``
* ``POST /v1/completions``: prompts (a string or a list), with ``echo`` and ``logprobs``
  for scoring prompts (``max_tokens=0``) as lm-eval-style clients do
* ``POST /v1/chat/completions``

Pydantic models validate requests at the boundary; every error is OpenAI-shaped JSON
(``{"error": {"message", "type", "param", "code"}}``) so clients show the message.
The model is not thread-safe, so it runs under a lock, one request at a time, in a
worker thread: the event loop keeps answering (``/v1/models``, errors) meanwhile.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal, TypeVar

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint
from starlette.responses import Response

from oversight.models.base import ChatMessage, GenerationRequest, GenerationResult, ModelError
from oversight.models.hf import HFModel, TokenLogprob

T = TypeVar("T")

#: OpenAI's defaults where a request leaves a field out.
DEFAULT_COMPLETION_MAX_TOKENS = 16
DEFAULT_CHAT_MAX_TOKENS = 256
MAX_TOP_LOGPROBS = 20


# -- the wire format (pydantic at the boundary) --------------------------------


class _Request(BaseModel):
    # Clients send fields we do not use (user, frequency_penalty, ...): accept and ignore.
    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False

    def check_supported(self) -> None:
        """Refuse what this server does not do, saying so (rather than ignoring it)."""
        if self.stream:
            raise APIError(400, "streaming is not supported by this server; send stream=false", param="stream")
        if self.n != 1:
            raise APIError(400, f"n={self.n}: this server returns one choice per prompt; send n=1", param="n")

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_Request):
    prompt: str | list[str]
    max_tokens: int = Field(DEFAULT_COMPLETION_MAX_TOKENS, ge=0)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(_Request):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "oversight"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class APIError(Exception):
    """An error answered as OpenAI-shaped JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


# -- the model side (runs in a worker thread, under the lock) -----------------


class ServedModel:
    """One local model, its public name, and the lock that serialises its use."""

    def __init__(self, model: HFModel, name: str) -> None:
        self.model = model
        self.name = name
        self.created = int(time.time())
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread, alone on the model; model errors become 400s."""

        def locked() -> T:
            with self._lock:
                return fn()

        try:
            return await run_in_threadpool(locked)
        except (ModelError, ValueError) as e:
            raise APIError(400, str(e)) from None

    def count_tokens(self, text: str, *, special: bool = True) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=special)["input_ids"])

    def complete(self, request: CompletionRequest) -> CompletionResponse:
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not prompts or any(not p for p in prompts):
            raise APIError(400, "prompt must be a non-empty string or a non-empty list of them", param="prompt")
        generation = [
            GenerationRequest(
                prompt=p,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=request.stops(),
                seed=request.seed or 0,
            )
            for p in prompts
        ]
        results = self.model.generate(generation)
        choices, n_prompt, n_completion = [], 0, 0
        for index, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
            logprobs = None
            if request.logprobs is not None:
                logprobs = self.logprobs(prompt, result.text, top_k=request.logprobs, echo=request.echo)
            text = prompt + result.text if request.echo else result.text
            choices.append(CompletionChoice(index=index, text=text, finish_reason=result.finish_reason, logprobs=logprobs))
            n_prompt += self.count_tokens(prompt)
            n_completion += self.count_tokens(result.text, special=False) if result.text else 0
        return CompletionResponse(
            id=f"cmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=self.name,
            choices=choices,
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_completion, total_tokens=n_prompt + n_completion),
        )

    def logprobs(self, prompt: str, completion: str, *, top_k: int, echo: bool) -> CompletionLogprobs:
        """Logprobs of the prompt (when echoed) and of the completion.

        One forward pass over ``prompt + completion`` scores both; the completion's
        tokens are those of the re-tokenised text that start at or after the prompt's
        end, which are the generated tokens unless the tokeniser merges across the seam.
        """
        scored: list[TokenLogprob] = self.model.prompt_logprobs(prompt + completion, top_k=top_k)
        if not echo:
            scored = [t for t in scored if t.offset >= len(prompt) and t.logprob is not None]
        return CompletionLogprobs(
            tokens=[t.token for t in scored],
            token_logprobs=[t.logprob for t in scored],
            # OpenAI sends null where there is no distribution (the first token).
            top_logprobs=[None if t.logprob is None else dict(t.top) for t in scored],
            text_offset=[t.offset for t in scored],
        )

    def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        max_tokens = request.max_completion_tokens
        if max_tokens is None:
            max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_CHAT_MAX_TOKENS
        generation = GenerationRequest(
            messages=tuple(ChatMessage(m.role, m.content) for m in request.messages),
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stops(),
            seed=request.seed or 0,
        )
        result: GenerationResult = self.model.generate([generation])[0]
        n_prompt = self.count_tokens(self.model.render_prompt(generation))
        n_completion = self.count_tokens(result.text, special=False) if result.text else 0
        return ChatCompletionResponse(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=self.name,
            choices=[ChatChoice(index=0, message=ChatMessageOut(content=result.text), finish_reason=result.finish_reason)],
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_completion, total_tokens=n_prompt + n_completion),
        )


# -- the app -------------------------------------------------------------------


def create_app(model: HFModel, *, name: str | None = None, api_key: str | None = None) -> FastAPI:
    """An OpenAI-compatible app serving ``model`` as ``name`` (default: its spec).

    With ``api_key`` set, requests must send ``Authorization: Bearer <api_key>``.
    """
    served = ServedModel(model, name or model.info.spec)
    app = FastAPI(title="oversight OpenAI-compatible server", version="1")
    app.state.served = served

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return APIError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None).response()

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        message = f"the model failed: {type(exc).__name__}: {exc}"
        return APIError(500, message, type="server_error").response()

    @app.middleware("http")
    async def _authorise(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if api_key is not None and not secrets.compare_digest(
            request.headers.get("authorization", ""), f"Bearer {api_key}"
        ):
            message = "invalid or missing API key: send `Authorization: Bearer <key>`"
            return APIError(401, message, type="authentication_error", code="invalid_api_key").response()
        return await call_next(request)

    def check(request: _Request) -> None:
        request.check_supported()
        if request.model != served.name:
            raise APIError(
                404,
                f"the model {request.model!r} does not exist; this server serves {served.name!r}",
                code="model_not_found",
                param="model",
            )

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=served.name, created=served.created)])

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> CompletionResponse:
        check(request)
        return await served.run(lambda: served.complete(request))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> ChatCompletionResponse:
        check(request)
        return await served.run(lambda: served.chat(request))

    return app


def validation_error(exc: RequestValidationError) -> APIError:
    """The first validation problem as a 400, naming the field (OpenAI's ``param``)."""
    errors = exc.errors()
    if not errors:
        return APIError(400, "invalid request")
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
    elif param:
        message = f"{param}: {message}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return APIError(400, message + more, param=param)


# -- running it ----------------------------------------------------------------


def serve(
    model_spec: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    dtype: str = "float32",
    *,
    name: str | None = None,
    api_key: str | None = None,
) -> None:
    """Load ``model_spec`` and serve it until interrupted (``oversight serve``)."""
    from oversight.models.registry import load_model

    model = load_model(model_spec, dtype=dtype)
    if not isinstance(model, HFModel):
        raise ModelError(
            f"{model_spec!r} is a {model.info.backend!r} model; only local models "
            "(default, hf:<dir | file.gguf>) can be served"
        )
    uvicorn.run(create_app(model, name=name or model_spec, api_key=api_key), host=host, port=port)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the OpenAI-compatible ``app`` from a background thread; yields its base URL
    (``http://host:port/v1``). For tests, notebooks and judges that need a local endpoint."""
    with run_in_thread(app, host, port) as root:
        yield f"{root}/v1"


@contextlib.contextmanager
def run_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve any ASGI ``app`` with uvicorn from a background thread; yields ``http://host:port``.

    Port 0 picks a free port: the socket is bound here, before the server starts, so
    there is no race for it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {host}:{bound_port} did not start")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
