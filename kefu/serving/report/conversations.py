"""Conversations in a scored file (`kefu score --session-col` wrote `session_id` and
`session_turn`): how many were handed to a person, at which turn, and why.

Rows arrive in input order, not in conversation order, so each session keeps a small record
while the file streams by: messages seen, whether the bot asked to clarify, the earliest turn
routed to a human with the reasons of the messages at that turn, and the turns that place
clarify, bot and human routes against each other (the first clarify, the last bot turn, the
last human turn).
Memory: one record per session (a few hundred bytes), the only part of the report that grows
with the data, and only with the number of conversations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

LAST_TURN_BUCKET = 6  # handover turns from here on are counted together ("6+")


@dataclass(slots=True)  # one per conversation, the part that grows: no __dict__ each
class _Session:
    messages: int = 0
    clarified: bool = False
    handover_turn: int | None = None  # earliest turn routed to a human; 0: turn unknown
    handover_reasons: tuple[str, ...] = ()
    # for the order of routes; a turn without a number is not placed
    first_clarify: int | None = None  # earliest numbered turn routed clarify
    last_bot: int | None = None  # latest numbered turn routed bot
    last_human: int | None = None  # latest numbered turn routed human
    human_unplaced: bool = False  # a turn routed human has no number: it may come at any time

    def went_on_with_the_bot(self) -> bool:
        """After the first clarify, at least one bot turn and no human turn (see
        `ConversationStats.clarified_then_bot`)."""
        clarify = self.first_clarify
        if clarify is None or self.last_bot is None or self.last_bot <= clarify:
            return False
        return not self.human_unplaced and (self.last_human is None or self.last_human < clarify)


@dataclass
class ConversationStats:
    sessions: dict[str, _Session] = field(default_factory=dict)

    def add(self, session: str, turn: int | None, action: str | None, reasons: list[str]) -> None:
        record = self.sessions.get(session)
        if record is None:
            record = self.sessions[session] = _Session()
        record.messages += 1
        record.clarified |= action == "clarify"
        _place(record, turn, action)
        if action != "human":
            return
        known, first = turn or 0, record.handover_turn
        # the earliest known turn; a known turn beats an unknown one (0), whatever the row order
        if first is None or (known > 0 and (first == 0 or known < first)):
            record.handover_turn, record.handover_reasons = known, tuple(reasons)
        elif known == first:  # two hand-overs at one turn: neither came first, both say why
            record.handover_reasons = tuple(sorted({*record.handover_reasons, *reasons}))

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
        """Reasons of the message that handed each session over (a session may have several);
        messages sharing that turn number pool theirs, so the file's row order cannot choose."""
        return Counter(
            reason for record in self.sessions.values() for reason in record.handover_reasons
        )

    def clarified_then_bot(self) -> int:
        """Sessions the bot asked to clarify that went on with the bot and reached no person
        afterwards: after the first turn routed clarify, a later turn is routed bot and no later
        turn is routed human. So clarify → bot counts, and so does human → clarify → bot (the
        person came before the question); a clarify that ends the session does not (nothing
        shows how it ended), nor does clarify → human, clarify → bot → human or clarify → human
        → clarify → bot. Turns are placed by their number: a clarify or bot turn without one
        is passed over, and a human turn without one keeps the session out (it may have come
        after the clarify)."""
        return sum(s.went_on_with_the_bot() for s in self.sessions.values())


def _place(record: _Session, turn: int | None, action: str | None) -> None:
    """Keep the turns `clarified_then_bot` orders: the first clarify, the last bot and human."""
    if not turn:
        record.human_unplaced |= action == "human"
    elif action == "clarify":
        record.first_clarify = min(turn, record.first_clarify or turn)
    elif action == "bot":
        record.last_bot = max(turn, record.last_bot or turn)
    elif action == "human":
        record.last_human = max(turn, record.last_human or turn)
