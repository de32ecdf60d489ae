"""The cashier's answer to a "possible member" card: confirm (it is them) or reject (not me).

A possible member's visit is held: the receipt is not linked and the visit's shots wait on
the decision row. Confirming links the receipt to the member, adds the shots to the member
as verified samples and records the confirmation as ground truth; the answer is the member's
full card. Rejecting records the rejection (that member is not proposed again at this till for
the rest of the visit, see `identity.REJECTION_MEMORY`), files the visit under a new anonymous
customer, and answers with that card. Either way the stored checkout answer is replaced, so a
retried checkout returns what the cashier now sees. A decision is answered once.
"""

from __future__ import annotations

from typing import Literal

import structlog
from sqlalchemy.orm import Session

from cloud_api.db.models import Customer, Receipt, RecognitionDecision
from cloud_api.reports import rollups
from cloud_api.services.checkout import enrol, link_receipt, new_customer
from cloud_api.services.context import Caller, Services
from cloud_api.services.errors import Conflict, Forbidden, NotFound
from cloud_api.services.identity import learn_payment_token, unpack_visit
from cloud_api.services.recognizer import context_for
from cloud_api.services.vip_card import build_card
from contract import CheckoutResponse, DecisionAnswer, Demographics, Embedding, VipCard

log = structlog.get_logger(__name__)


def confirm(services: Services, caller: Caller, decision_id: int) -> DecisionAnswer:
    with services.sessions() as session, session.begin():
        decision, receipt = _pending(session, caller, decision_id)
        member = session.get(Customer, decision.candidate_id) if decision.candidate_id else None
        if member is None or not member.is_member:
            raise Conflict(f"decision {decision_id}'s member no longer exists")
        shots = _shots(decision)
        if shots:
            here = context_for(caller.region_id, caller.store_id, member.gender, member.age_years)
            enrol(session, services, member, shots, here, verified=True)
        link_receipt(session, caller, receipt, member)
        learn_payment_token(session, receipt.payment_token, member)
        decision.cashier = "confirmed"
        decision.customer_id = member.id
        decision.truth_customer_id = member.id
        decision.truth_source = "cashier"
        decision.truth_had_face = True
        _forget_shots(decision)
        rollups.customers_changed(session, [member.id])
        card = build_card(
            session,
            member,
            store_id=caller.store_id,
            status="returning",
            distance=decision.distance,
            demographics=_demographics(receipt),
        )
        answer = _answer(session, receipt, decision, card, "confirmed")
    services.recognizer.sync()
    log.info("possible_member_confirmed", decision=decision_id, store=caller.store_id)
    return answer


def reject(services: Services, caller: Caller, decision_id: int) -> DecisionAnswer:
    with services.sessions() as session, session.begin():
        decision, receipt = _pending(session, caller, decision_id)
        shots = _shots(decision)
        decision.cashier = "rejected"
        demographics = _demographics(receipt)
        gender = demographics.gender if demographics else None
        age = demographics.age_years if demographics else None
        here = context_for(caller.region_id, caller.store_id, gender, age)
        customer = new_customer(session, services, caller, shots, here, demographics)
        link_receipt(session, caller, receipt, customer)
        decision.customer_id = customer.id
        _forget_shots(decision)
        card = build_card(
            session,
            customer,
            store_id=caller.store_id,
            status="new",
            distance=None,
            demographics=demographics,
        )
        answer = _answer(session, receipt, decision, card, "rejected")
    services.recognizer.sync()
    log.info("possible_member_rejected", decision=decision_id, store=caller.store_id)
    return answer


def _pending(
    session: Session, caller: Caller, decision_id: int
) -> tuple[RecognitionDecision, Receipt]:
    decision = session.get(RecognitionDecision, decision_id, with_for_update=True)
    if decision is None:
        raise NotFound(f"decision {decision_id} does not exist")
    if decision.store_id != caller.store_id:
        raise Forbidden(f"decision {decision_id} was made in another store")
    if decision.outcome != "possible_member":
        raise Conflict(
            f"decision {decision_id} did not ask the cashier (it was {decision.outcome})"
        )
    if decision.cashier is not None:
        raise Conflict(f"decision {decision_id} was already answered ({decision.cashier})")
    receipt = session.get(Receipt, decision.receipt_id) if decision.receipt_id else None
    if receipt is None:
        raise Conflict(f"decision {decision_id}'s receipt no longer exists")
    return decision, receipt


def _shots(decision: RecognitionDecision) -> list[Embedding]:
    if decision.visit_descriptors is None or not decision.visit_qualities:
        return []
    return unpack_visit(decision.visit_descriptors, list(decision.visit_qualities))


def _forget_shots(decision: RecognitionDecision) -> None:
    decision.visit_descriptors = None
    decision.visit_qualities = None


def _demographics(receipt: Receipt) -> Demographics | None:
    """The estimate the checkout's answer carried (the face crop itself is not kept)."""
    stored = CheckoutResponse.model_validate(receipt.response)
    return stored.card.demographics


def _answer(
    session: Session,
    receipt: Receipt,
    decision: RecognitionDecision,
    card: VipCard,
    outcome: Literal["confirmed", "rejected"],
) -> DecisionAnswer:
    card = card.model_copy(update={"decision_id": decision.id})
    stored = CheckoutResponse.model_validate(receipt.response)
    receipt.response = stored.model_copy(update={"card": card}).model_dump(mode="json")
    session.flush()
    return DecisionAnswer(decision_id=decision.id, outcome=outcome, card=card)
