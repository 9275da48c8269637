"""Conversations in a scored file (`kefu score --session-col` wrote `session_id` and
`session_turn`): how many were handed to a person, at which turn, and why.

Rows arrive in input order, not in conversation order, so each session keeps a small record
while the file streams by: messages seen, whether the bot asked to clarify, and the earliest
turn routed to a human with that message's reasons. Memory: one record per session (about 200
bytes), the only part of the report that grows with the data, and only with the number of
conversations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

LAST_TURN_BUCKET = 6  # handover turns from here on are counted together ("6+")


@dataclass
class _Session:
    messages: int = 0
    clarified: bool = False
    handover_turn: int | None = None  # earliest turn routed to a human; 0: turn unknown
    handover_reasons: tuple[str, ...] = ()


@dataclass
class ConversationStats:
    sessions: dict[str, _Session] = field(default_factory=dict)

    def add(self, session: str, turn: int | None, action: str | None, reasons: list[str]) -> None:
        record = self.sessions.get(session)
        if record is None:
            record = self.sessions[session] = _Session()
        record.messages += 1
        record.clarified |= action == "clarify"
        if action != "human":
            return
        known, first = turn or 0, record.handover_turn
        # the earliest known turn; a known turn beats an unknown one (0), whatever the row order
        if first is None or (known > 0 and (first == 0 or known < first)):
            record.handover_turn, record.handover_reasons = known, tuple(reasons)

    @property
    def count(self) -> int:
        return len(self.sessions)

    @property
    def handed_over(self) -> int:
        return sum(s.handover_turn is not None for s in self.sessions.values())

    @property
    def clarified(self) -> int:
        return sum(s.clarified for s in self.sessions.values())

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.sessions.values())

    def handover_turns(self) -> Counter[str]:
        """Handed-over sessions by the turn of their first human route: "1" .. "5", "6+"."""
        turns: Counter[str] = Counter()
        for record in self.sessions.values():
            if record.handover_turn is None:
                continue
            turn = record.handover_turn
            turns[
                "unknown"
                if turn == 0
                else f"{LAST_TURN_BUCKET}+"
                if turn >= LAST_TURN_BUCKET
                else str(turn)
            ] += 1
        return turns

    def handover_reasons(self) -> Counter[str]:
        """Reasons of the message that handed each session over (a session may have several)."""
        return Counter(
            reason for record in self.sessions.values() for reason in record.handover_reasons
        )

    def clarified_then_bot(self) -> int:
        """Sessions where the bot asked to clarify and no person was needed afterwards."""
        return sum(s.clarified and s.handover_turn is None for s in self.sessions.values())
