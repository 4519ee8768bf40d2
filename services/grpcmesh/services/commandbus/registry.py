"""Command handlers keyed by the type URL of the command message they accept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from grpcmesh.services.cqrs.handlers import CommandHandler

__all__ = ["HandlerRegistry"]


class HandlerRegistry(Mapping[str, CommandHandler]):
    """type URL → handler; registering a type twice is a programming error."""

    def __init__(self, handlers: Iterable[CommandHandler] = ()) -> None:
        self._handlers: dict[str, CommandHandler] = {}
        for handler in handlers:
            self.register(handler)

    def register(self, handler: CommandHandler) -> None:
        url = handler.type_url
        if url in self._handlers:
            raise ValueError(f"a handler for {url} is already registered")
        self._handlers[url] = handler

    def __getitem__(self, type_url: str) -> CommandHandler:
        return self._handlers[type_url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
