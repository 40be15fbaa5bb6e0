"""Which TPS have sources that disagree, asked of the database (ocr/review/conflicts.py): the same TPS as the
comparison in Python over corrections, external numbers and TPS without a place; paged with none twice; the queue's
filter, badge and order; the dashboard's count; a read of a TPS in conflict verified only once a reviewer chose it,
and then by another one. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from ocr.record import SubmissionResult, TpsIdentity
from ocr.review.accounts import User, hash_password
from ocr.review.dashboard import dashboard
from ocr.review.errors import FourEyes, ReviewError
from ocr.review.search import SubmissionFilter
from ocr.review.workflow import Reviews
from tests.review.test_sources import KEY, PLACE, read


def at(tps: int) -> TpsIdentity:
    return PLACE.model_copy(update={"tps": tps})


def checked(name: str, n: int, paslon_1: int, place: TpsIdentity | None = PLACE) -> SubmissionResult:
    """A read a reviewer can verify: `ok`, every value present, no template whose rules could fail."""
    result = read(name, n, paslon_1, place)
    return result.model_copy(update={"template": None, "status": "ok", "fields": {
        f: r for f, r in result.fields.items() if r.value is not None}})


def reviewer(reviews: Reviews, name: str) -> User:
    return reviews.add_user(f"{name}-{uuid.uuid4().hex[:6]}", "reviewer", hash_password("a long password"))


def id_of(reviews: Reviews, name: str, n: int) -> int:
    return reviews.id_of(name, f"{n:064x}")


def test_the_database_finds_the_tps_the_comparison_finds(sources):
    reviews = sources.reviews
    reviews.store.save_many([
        read("agree-a", 1, 50, at(1)), read("agree-b", 2, 50, at(1)),  # two reads, one value: no conflict
        read("fixed-a", 3, 60, at(2)), read("fixed-b", 4, 66, at(2)),  # disagree until a correction
        read("blanked-a", 5, 70, at(3)), read("blanked-b", 6, 70, at(3)),  # agree until one is corrected to blank
        read("alone", 7, 80, at(4)),  # one read and an external set
        read("kab-x/tps-1", 8, 10, None), read("kab-x/tps-1", 9, 11, None),  # no place: a TPS by its name
        read("single", 10, 5, at(5)),  # one source
    ])
    rudi = reviewer(reviews, "rudi")
    reviews.correct(id_of(reviews, "fixed-b", 4), rudi, {"suara_paslon_1": 60}, "the 0 read as 6")
    reviews.correct(id_of(reviews, "blanked-b", 6), rudi, {"suara_paslon_1": None}, "nothing written there")
    sources.import_numbers("kpu", "kwk-gubernur-3", {
        tps_of(4): {"suara_paslon_1": 81, "suara_paslon_2": 244}, tps_of(1): {"suara_paslon_2": 244},
        tps_of(9): {"suara_paslon_1": 1}})  # a TPS of numbers alone: one source
    expected = [tps_of(3), tps_of(4), "name:kab-x/tps-1"]
    assert [t.key for t in sources.in_conflict(100)] == sorted(expected)
    candidates = [tps_of(n) for n in range(1, 10)] + ["name:kab-x/tps-1", "name:single"]
    assert sorted(k for k in candidates if sources.of(k).conflicts) == sorted(expected)  # as Python compares
    assert sources.conflict_counts() == (3, 3)
    assert sources.conflict_counts(tps_of(4)) == (1, 1) and sources.conflict_counts(tps_of(2)) == (0, 0)


def tps_of(tps: int) -> str:
    return KEY.replace("/7/", f"/{tps}/")


def test_paging_through_conflicts_shows_each_tps_once(sources):
    reviews = sources.reviews
    reviews.store.save_many([r for n in range(1, 6) for r in (read(f"a{n}", 2 * n, 1, at(n)),
                                                               read(f"b{n}", 2 * n + 1, 2, at(n)))])
    pages = [sources.in_conflict(2, offset) for offset in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    keys = [t.key for page in pages for t in page]
    assert keys == sorted(tps_of(n) for n in range(1, 6))  # each once, in order


def test_the_queue_filters_badges_and_raises_an_undecided_conflict_and_the_dashboard_counts_it(sources):
    reviews = sources.reviews
    reviews.store.save_many([checked("plano", 1, 172), checked("salinan", 2, 127), read("risky", 3, 5, at(8)),
                             checked("calm", 4, 9, at(9))])
    queue = reviews.queue()
    # The two reads in conflict come with those to review, though the reader was sure of both.
    assert [(i.submission, i.conflict) for i in queue] == [("risky", False), ("plano", True), ("salinan", True),
                                                           ("calm", False)]
    only = SubmissionFilter(conflict=True)
    assert [i.submission for i in reviews.queue(found=only)] == ["plano", "salinan"]
    assert reviews.queue_size(only) == reviews.submissions_size(only) == 2
    assert dashboard(reviews.store)["conflicts"] == {"tps": 1, "undecided": 1}

    sources.choose(KEY, f"submission:{id_of(reviews, 'plano', 1)}", reviewer(reviews, "rina"), "the plano is clear")
    assert dashboard(reviews.store)["conflicts"] == {"tps": 1, "undecided": 0}
    assert [(i.submission, i.conflict) for i in reviews.queue()][-3:] == [("plano", True), ("salinan", True),
                                                                          ("calm", False)]  # decided: back with ok


def test_a_read_of_a_tps_in_conflict_is_verified_once_chosen_by_another_reviewer(sources):
    reviews = sources.reviews
    reviews.store.save_many([checked("plano", 1, 172), checked("salinan", 2, 127)])
    plano, salinan = id_of(reviews, "plano", 1), id_of(reviews, "salinan", 2)
    rudi, rina = reviewer(reviews, "rudi"), reviewer(reviews, "rina")
    with pytest.raises(ReviewError, match="disagree on suara_paslon_1: choose its result"):
        reviews.verify(plano, rudi)
    sources.choose(KEY, f"submission:{plano}", rina, "the plano is clear, the salinan a copying slip")
    with pytest.raises(FourEyes, match="you chose this read"):
        reviews.verify(plano, rina)
    with pytest.raises(ReviewError, match=f"{rina.name} chose another as its result"):
        reviews.verify(salinan, rudi)
    assert reviews.view(plano).state == reviews.view(salinan).state == "open"
    reviews.verify(plano, rudi)
    assert reviews.view(plano).state == "verified"
    refusals = [e for e in reviews.audit(submission_id=plano) if e["action"] == "verify_refused"]
    assert [e["user"] for e in refusals] == [rina.name]  # the four-eyes refusal is kept

    reviews.correct(salinan, rina, {"suara_paslon_1": 172}, "the copy reads 172 too")  # the sources agree again
    assert reviews.source_refusal(reviews.view(salinan), rudi) is None
    reviews.verify(salinan, rudi)
