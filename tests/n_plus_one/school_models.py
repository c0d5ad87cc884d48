"""Models for N+1 cases beyond a blog: composite keys, a self-referencing tree, follows.

``school_engine`` holds 2 students, 6 courses, student 1 enrolled in all 6
courses and student 2 in courses 1 and 2 (enrollment keys ``(student, course)``);
a tree of nodes, 2 roots with 2 children each, 3 levels below the roots
(2 + 4 + 8 + 16 nodes); and follows ``(follower, author)``: student 1 follows
authors 1-6, student 2 follows authors 1 and 2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from database_server import dsn

from data_bridge_core import Column, Engine, Table, relationship
from scratch_schema import fresh_schema

DSN = dsn()
COURSES = 6
ROOTS, FAN_OUT, LEVELS_BELOW_ROOTS = 2, 2, 3


class Student(Table):
    id: int = Column(primary_key=True)
    name: str
    enrollments: list[Enrollment] = relationship(back_populates="student")

    class Settings:
        table_name = "sch_students"


class Course(Table):
    id: int = Column(primary_key=True)
    title: str

    class Settings:
        table_name = "sch_courses"


class Enrollment(Table):
    student_id: int = Column(primary_key=True, foreign_key="sch_students.id")
    course_id: int = Column(primary_key=True, foreign_key="sch_courses.id")
    grade: int = 0
    student: Student = relationship(back_populates="enrollments")
    course: Course = relationship()

    class Settings:
        table_name = "sch_enrollments"


class Node(Table):
    id: int = Column(primary_key=True)
    parent_id: int | None = Column(foreign_key="sch_nodes.id", default=None)
    label: str
    children: list[Node] = relationship(back_populates="parent")
    parent: Node | None = relationship(back_populates="children")

    class Settings:
        table_name = "sch_nodes"


class Follow(Table):
    follower_id: int = Column(primary_key=True)
    author_id: int = Column(primary_key=True)
    since: int = 0

    class Settings:
        table_name = "sch_follows"


@pytest.fixture
async def school_engine() -> AsyncIterator[Engine]:
    async with fresh_schema("sch") as schema:
        engine = Engine(DSN, min_size=0, max_size=4, options=f"-c search_path={schema}")
        try:
            await engine.create_all(Student, Course, Enrollment, Node, Follow)
            conn = await engine.acquire()
            try:
                async with conn.transaction():
                    for s in (1, 2):
                        await conn.execute(
                            "INSERT INTO sch_students (id, name) OVERRIDING SYSTEM VALUE "
                            "VALUES (%s, %s)",
                            (s, f"student{s}"),
                        )
                    for c in range(1, COURSES + 1):
                        await conn.execute(
                            "INSERT INTO sch_courses (id, title) OVERRIDING SYSTEM VALUE "
                            "VALUES (%s, %s)",
                            (c, f"course{c}"),
                        )
                    for s, courses in ((1, range(1, COURSES + 1)), (2, range(1, 3))):
                        for c in courses:
                            await conn.execute(
                                "INSERT INTO sch_enrollments (student_id, course_id, grade) "
                                "VALUES (%s, %s, %s)",
                                (s, c, 10 * c),
                            )
                            await conn.execute(
                                "INSERT INTO sch_follows (follower_id, author_id, since) "
                                "VALUES (%s, %s, 0)",
                                (s, c),
                            )
                    next_id = 1
                    level: list[int | None] = [None]
                    for depth in range(LEVELS_BELOW_ROOTS + 1):
                        below: list[int | None] = []
                        for parent in level:
                            for _ in range(ROOTS if depth == 0 else FAN_OUT):
                                await conn.execute(
                                    "INSERT INTO sch_nodes (id, parent_id, label) "
                                    "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s)",
                                    (next_id, parent, f"n{next_id}"),
                                )
                                below.append(next_id)
                                next_id += 1
                        level = below
            finally:
                await engine.release(conn)
            yield engine
        finally:
            await engine.dispose()
