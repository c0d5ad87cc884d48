"""The demo's request mix: what a small blog API does in a few requests.

Each request runs under its own parent span (as an HTTP server span would
be), so the printed trace shows the ORM spans nested under it.
"""

from __future__ import annotations

import random

from demo.models import Comment, Post, User
from opentelemetry.trace import Tracer

from data_bridge_core import Engine, IntegrityError, Session, selectinload
from opentelemetry_instrumentation_data_bridge.telemetry import create_linked_task

COUNTRIES = ("DE", "FR", "JP", "BR", None)
PAGE_SIZE = 10
N_PLUS_ONE_PAGE = "GET /users/posts (N+1)"
EAGER_PAGE = "GET /users/posts (selectinload)"
SIGNUP = "POST /users (signup)"
WELCOME_TASK = "send_welcome_email"


async def seed(engine: Engine, users: int = 20, posts_per_user: int = 3) -> None:
    """A small blog: users, a few posts each, two comments per post."""
    rng = random.Random(7)
    async with Session(engine) as session:
        for i in range(users):
            user = User(
                name=f"user{i:02d}",
                email=f"user{i:02d}@example.com",
                age=rng.randint(16, 70),
                country=COUNTRIES[i % len(COUNTRIES)],
            )
            for j in range(posts_per_user):
                post = Post(title=f"Post {j} by user{i:02d}", body="...", author=user)
                post.comments = [
                    Comment(author_name=f"reader{k}", body="Nice post") for k in range(2)
                ]
                session.add(post)
        await session.commit()


async def run_requests(engine: Engine, tracer: Tracer) -> None:
    """The request mix; each `with tracer.start_as_current_span` is one request."""
    with tracer.start_as_current_span("GET /users?active=true"):
        async with Session(engine) as session:
            adults = await (
                User.find(User.active == True, User.age >= 18)  # noqa: E712
                .order_by(User.created_at.desc())
                .limit(PAGE_SIZE)
                .to_list()
            )
            await User.find(User.active == True).count()  # noqa: E712
            await session.find(User).filter(User.email == "user03@example.com").exists()
            await session.find(User).aggregate(
                [
                    {"$match": {"active": True}},
                    {
                        "$group": {
                            "_id": "$country",
                            "count": {"$sum": 1},
                            "avg_age": {"$avg": "$age"},
                        }
                    },
                    {"$sort": {"count": -1}},
                ]
            )
            assert adults

    with tracer.start_as_current_span("PATCH /users/{id}"):
        async with Session(engine) as session:
            user = await User.get(1)
            assert user is not None
            user.age += 1
            session.add(Post(title="A new post", author=user))
            await session.commit()

    with tracer.start_as_current_span("POST /users (duplicate email, rolled back)"):
        async with Session(engine) as session:
            session.add(User(name="copycat", email="user01@example.com"))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()

    with tracer.start_as_current_span(SIGNUP):
        async with Session(engine) as session:
            newcomer = User(name="newcomer", email="newcomer@example.com", age=30)
            session.add(newcomer)
            await session.commit()
            # Background work: its own trace, linked to this request's span.
            welcome = create_linked_task(send_welcome_email(engine, newcomer.id), name=WELCOME_TASK)

    with tracer.start_as_current_span(N_PLUS_ONE_PAGE):
        async with Session(engine) as session:
            users = await session.find(User).order_by(User.id.asc()).limit(PAGE_SIZE).to_list()
            for user in users:
                await user.posts  # one query per user: the N+1 pattern

    with tracer.start_as_current_span(EAGER_PAGE):
        async with Session(engine) as session:
            users = await (
                session.find(User)
                .options(selectinload(User.posts).options(selectinload(Post.comments)))
                .order_by(User.id.asc())
                .limit(PAGE_SIZE)
                .to_list()
            )
            for user in users:
                for post in await user.posts:  # already loaded: no query, no span
                    await post.comments

    await welcome


async def send_welcome_email(engine: Engine, user_id: int) -> None:
    """What a background job does: reads the user and who else joined from the same country."""
    async with Session(engine) as session:
        user = await User.get(user_id)
        assert user is not None
        await session.find(User).filter(User.country == user.country).count()
