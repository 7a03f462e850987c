"""Errors that reach the user as one clear line (no traceback)."""


class StreamsegError(Exception):
    """Base: str(err) is the one-line message shown to the user."""


class ConfigError(StreamsegError):
    """The config file is invalid. `problems` holds one line per problem, each naming the field path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelError(StreamsegError):
    """A model file is missing, unreadable, or has outputs streamseg cannot decode."""


class SourceError(StreamsegError):
    """A video source cannot be opened or read. Messages never contain a password."""


class EngineUnavailable(StreamsegError):
    """The engine cannot run a frame now but may later (an inference server that is down or restarting).

    Cameras treat it like a camera outage: they go `reconnecting` and retry the frame until it is back.
    """
