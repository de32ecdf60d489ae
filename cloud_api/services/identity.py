"""Who is at the counter or the door: what the face says, and what the POS knows.

The face alone gives one of six outcomes (see `RecognitionDecision`): "member" (sure enough
to show a member's card), "returning" (an anonymous profile, linked at the returning target),
"possible_member" (a member, but only at the returning target: the cashier is asked), "new",
"no_face", "child" (estimated under the policy's age limit: neither matched nor enrolled).

Ground truth comes from the receipt: a scanned loyalty card (a member's VIP number), or a
payment-card token that a verified visit already tied to a customer. It overrides the face,
and the pair (face outcome, truth) is recorded for the recognition-quality report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, PaymentToken, RecognitionDecision
from cloud_api.recognition.gallery import Candidate, Decision
from cloud_api.services.context import Caller, Services
from cloud_api.services.recognizer import QueryContext, context_for
from contract import Demographics, Embedding
from contract import Receipt as ReceiptIn

Outcome = Literal["member", "returning", "possible_member", "new", "no_face", "child"]
TruthSource = Literal["loyalty", "payment", "cashier"]

#: A member the cashier said "not me" to is not proposed again at that till for this long
#: (the rest of the customer's visit: another receipt, a retry).
REJECTION_MEMORY = timedelta(minutes=15)


@dataclass
class FaceVerdict:
    """The face's outcome, the customer it points at, and what it was decided from."""

    outcome: Outcome
    usable: list[Embedding] = field(default_factory=list)
    context: QueryContext | None = None
    decision: Decision | None = None
    candidate: Customer | None = None

    @property
    def enrollable(self) -> bool:
        """Whether this face may be stored (a face was seen and it is not a child's)."""
        return self.outcome not in ("no_face", "child") and bool(self.usable)

    def distance(self) -> float | None:
        found = self._candidate()
        return None if found is None else round(found.distance, 4)

    def level(self) -> str | None:
        found = self._candidate()
        return None if found is None else found.level

    def searched(self) -> int:
        found = self._candidate()
        return 0 if found is None else found.searched

    def _candidate(self) -> Candidate | None:
        if self.decision is None:
            return None
        return self.decision.returning or self.decision.nearest


def judge_face(
    session: Session,
    services: Services,
    caller: Caller,
    embeddings: list[Embedding],
    demographics: Demographics | None,
    *,
    exclude: frozenset[int] = frozenset(),
) -> FaceVerdict:
    """The face's outcome for one visit (checkout, companion or sighting)."""
    usable = [e for e in embeddings if e.quality >= services.settings.min_embedding_quality]
    if not usable:
        return FaceVerdict("no_face")
    gender = demographics.gender if demographics else None
    age = demographics.age_years if demographics else None
    context = context_for(caller.region_id, caller.store_id, gender, age)
    decision = services.recognizer.decide(usable, context, exclude=exclude)
    if decision.child:  # the policy's age limit: neither matched nor to be enrolled
        return FaceVerdict("child", usable, context)
    accepted = decision.returning
    candidate = session.get(Customer, accepted.customer_id) if accepted is not None else None
    if candidate is None:  # nobody close enough (or deleted a moment ago)
        return FaceVerdict("new", usable, context, decision)
    if not candidate.is_member:
        outcome: Outcome = "returning"
    else:
        outcome = "member" if decision.member is not None else "possible_member"
    return FaceVerdict(outcome, usable, context, decision, candidate)


def ground_truth(
    session: Session, receipt: ReceiptIn
) -> tuple[Customer | None, TruthSource | None]:
    """The customer the POS identified: a scanned member card, else a known payment token."""
    if receipt.loyalty_id is not None:
        member = session.scalar(select(Customer).where(Customer.vip_number == receipt.loyalty_id))
        if member is not None and member.is_member:
            return member, "loyalty"
    if receipt.payment_token is not None:
        token = session.get(PaymentToken, receipt.payment_token)
        if token is not None:
            customer = session.get(Customer, token.customer_id)
            if customer is not None:
                return customer, "payment"
    return None, None


def learn_payment_token(session: Session, token: str | None, customer: Customer) -> None:
    """Tie a payment token to the customer a verified visit showed paying with it."""
    if token is None:
        return
    known = session.get(PaymentToken, token)
    if known is None:
        session.add(PaymentToken(token=token, customer_id=customer.id))
    elif known.customer_id != customer.id:  # a card passed on, or a shared one: newest wins
        known.customer_id = customer.id


def recently_rejected(session: Session, device_id: int, now: datetime) -> frozenset[int]:
    """Members a cashier at this till said "not me" to within REJECTION_MEMORY."""
    rows = session.scalars(
        select(RecognitionDecision.candidate_id).where(
            RecognitionDecision.device_id == device_id,
            RecognitionDecision.cashier == "rejected",
            RecognitionDecision.created_at >= now - REJECTION_MEMORY,
            RecognitionDecision.candidate_id.is_not(None),
        )
    ).all()
    return frozenset(int(c) for c in rows if c is not None)


def pack_visit(embeddings: list[Embedding]) -> tuple[bytes, list[float]]:
    """A visit's shots as stored on a pending decision (float32 rows, and their qualities)."""
    matrix = np.asarray([e.values() for e in embeddings], dtype="<f4")
    return matrix.tobytes(), [float(e.quality) for e in embeddings]


def unpack_visit(raw: bytes, qualities: list[float]) -> list[Embedding]:
    matrix = np.frombuffer(raw, dtype="<f4").reshape(len(qualities), -1)
    return [
        Embedding.compact([float(v) for v in row], quality)
        for row, quality in zip(matrix, qualities, strict=True)
    ]
