"""Parents with a composite primary key are counted by their whole identity key."""

from __future__ import annotations

import pytest
from school_models import Enrollment

from data_bridge_core import Engine, Session, identity_key
from opentelemetry_instrumentation_data_bridge.telemetry import n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")


async def test_six_enrollments_of_one_student_are_six_parents(school_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(school_engine) as session:
            enrollments = (
                await session.find(Enrollment).filter(Enrollment.student_id == 1).to_list()
            )
            assert len(enrollments) == 6
            for enrollment in enrollments:
                await enrollment.course  # six lazy loads, keys (1, 1) ... (1, 6)
    [finding] = scope.findings
    assert finding.relationship == "course"
    assert finding.count == 6


async def test_enrollments_of_two_students_count_each_key_once(school_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(school_engine) as session:
            enrollments = await session.find(Enrollment).order_by(Enrollment.course_id).to_list()
            assert len(enrollments) == 8
            for enrollment in enrollments:
                await enrollment.student  # two students: two loads, the other six are cache hits
            for enrollment in enrollments:
                await enrollment.course  # six courses: six loads, two cache hits
    assert [(f.relationship, f.count) for f in scope.findings] == [("course", 6)]


async def test_the_identity_key_of_a_composite_row_holds_every_key_column(
    school_engine: Engine,
) -> None:
    async with Session(school_engine) as session:
        link = await session.get(Enrollment, (1, 4))
        assert link is not None
        assert identity_key(link) == (Enrollment, (1, 4))
        assert identity_key(Enrollment(student_id=1)) is None  # no key yet
