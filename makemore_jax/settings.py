"""Errors about the user's settings, worded once for Python and once for the command line.

A `UsageError` is a message template whose settings are named fields: Python callers read
them as `name=value` (`str(e)`), the command line shows them as flags (`e.as_flags()`,
`--name value`), so no message is reworded after the fact. A `SettingError` is a refused
value of one field (`.field`), e.g. TrainConfig's or a model Config's checks.
"""

from __future__ import annotations

from typing import Any


class UsageError(ValueError):
    """A bad setting or request (exit status 2 on the command line).

    Args:
        template: the message; each `{key}` or `{key:spec}` is replaced by a setting.
        **settings: key -> (field name, value), shown by spec, in Python / on the command line:
            "" `name=value` / `--name value`; "name" `name` / `--name`; "set" `name=value` /
            `--name`; "word" `name value` / `--name value`.
    """

    def __init__(self, template: str, **settings: tuple[str, Any]):
        self.template, self.settings = template, settings
        super().__init__(self.render(python_setting))

    def render(self, setting) -> str:
        return self.template.format(**{k: _Shown(setting, *v) for k, v in self.settings.items()})

    def as_flags(self) -> str:
        """The message with its settings as the flags a user types."""
        return self.render(flag_setting)


class _Shown:
    def __init__(self, setting, name: str, value: Any = None):
        self.setting, self.name, self.value = setting, name, value

    def __format__(self, spec: str) -> str:
        return self.setting(self.name, self.value, spec)


class SettingError(UsageError):
    """`field`'s value is refused; the message starts with the field: "lr must be a positive number, got 0"."""

    def __init__(self, field: str, detail: str):
        self.field, self.detail = field, detail
        super().__init__("{field:name} " + detail.replace("{", "{{").replace("}", "}}"), field=(field, None))


NONE_WORDS = {"batch_size": "full"}  # the word a user types for a setting's None, where it is not "none"


def none_word(name: str) -> str:
    """How the command line spells `name`'s None: "full" for batch_size (every example), else "none"."""
    return NONE_WORDS.get(name, "none")


def python_setting(name: str, value: Any, spec: str = "") -> str:
    if spec == "name":
        return name
    return f"{name} {value}" if spec == "word" else f"{name}={value!r}"


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def flag_setting(name: str, value: Any, spec: str = "") -> str:
    """A setting as the flag a user types: True -> --name, False -> --no-name, None -> its `none_word`."""
    if spec in ("name", "set"):
        return flag_name(name)
    if value is True or value is False:
        return flag_name(name) if value else "--no-" + name.replace("_", "-")
    if value is None:
        value = none_word(name)
    return f"{flag_name(name)} {value}"
