"""The `session` resource of `flowlink:parser/parser` (componentize-py looks
for it in a module named after the interface)."""

import json

from componentize_py_types import Err, Ok
from wit_world.exports import parser as wit_parser
from wit_world.imports import types

from app import record


class Session(wit_parser.Session):
    def __init__(self, separator):
        self.separator = separator

    @classmethod
    def open(cls, config):
        settings = json.loads(config)
        unknown = sorted(set(settings) - {"separator"})
        if unknown:
            raise Err(f"parser.properties: unknown field {unknown[0]!r}, expected 'separator'")
        return cls(settings.get("separator", "|"))

    def parse(self, messages):
        flows = bytearray()
        outcomes = []
        rejected = []
        for at, message in enumerate(messages):
            count = 0
            for index, line in enumerate(bytes(message.payload).decode("utf-8", "replace").split("\n")):
                line = line.rstrip("\r")
                if not line.strip():
                    continue
                try:
                    flows += record(line, self.separator)
                    count += 1
                except (ValueError, KeyError) as error:
                    rejected.append(types.Rejected(message=at, index=index, reason=f"{error}"[:200]))
            outcomes.append(Ok(types.Outcome(flows=count, skipped=0)))
        return types.Parsed(flows=bytes(flows), outcomes=outcomes, rejected=rejected)

    def save_state(self):
        return b""

    def restore_state(self, state):
        return None
