"""Sign-in defences (issue 14, item 2; issue 23, item 6): failure limits with 429 + Retry-After, a cap on concurrent
password hashing, one gate for every door (API token and session, MONAI Label, Django's admin) with its counters in a
cache that every process shares, tokens that are hashed, expire, and are revoked by sign-out and by a password change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from annotation.signin import INFLIGHT, SignInRefused
from tests.api.conftest import PASSWORD
from tests.conftest import at_once
from tests.integration.conftest import database_url

pytestmark = pytest.mark.django_db  # tests/conftest.py empties the cache (the gate's counters) before each test

REPO = Path(__file__).resolve().parents[2]


def token_login(username: str, password: str, ip: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/api/auth/token/", {"username": username, "password": password},
                                          format="json")


def session_login(username: str, password: str, ip: str = "10.0.0.1"):
    client = APIClient(REMOTE_ADDR=ip, enforce_csrf_checks=True)
    client.get("/api/me/")
    return client.post("/api/auth/login/", {"username": username, "password": password}, format="json",
                       HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


def monailabel_login(username: str, password: str, ip: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/monailabel/auth/token", {"username": username, "password": password})


def admin_login(username: str, password: str, ip: str = "10.0.0.1"):
    """Django admin's own login form, with its CSRF token, as a browser sends it."""
    client = Client(REMOTE_ADDR=ip, enforce_csrf_checks=True)
    client.get("/admin/login/")
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password,
                                                       "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


DOORS = {"token": token_login, "session": session_login, "monailabel": monailabel_login, "admin": admin_login}


def admitted(door: str, response) -> bool:
    return response.status_code == (302 if door == "admin" else 200)


def wrong(door: str, response) -> bool:
    """Refused as a wrong password: the admin shows its form again (200), the API answers 400."""
    if door == "admin":
        return response.status_code == 200 and b"correct username and password" in response.content
    return response.status_code == 400 and "wrong" in response.json()["detail"]


def refused_detail(door: str, response) -> str:
    """The 429's reason: DRF's JSON detail, or the admin's plain text."""
    assert response.status_code == 429, (door, response.status_code)
    return response.content.decode() if door == "admin" else response.json()["detail"]


@pytest.mark.parametrize("login", [token_login, session_login])
def test_wrong_passwords_are_throttled_per_username_with_retry_after(world, settings, login):
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = 5
    codes = [login("a1", f"wrong{i}", ip=f"10.0.1.{i}").status_code for i in range(8)]
    assert codes == [400] * 5 + [429] * 3  # before: 30 wrong passwords in a row, all 400
    refused = login("a1", PASSWORD, ip="10.0.2.1")  # the right one, straight after, from anywhere: refused too
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= settings.ATLAS_SIGNIN_WINDOW_SECONDS + 1
    assert "too many failed sign-ins" in refused.json()["detail"]
    assert login("a2", PASSWORD, ip="10.0.2.1").status_code == 200  # another user is not locked out


def test_wrong_passwords_are_throttled_per_ip(world, settings):
    settings.ATLAS_SIGNIN_FAILURES_PER_IP = 4
    codes = [token_login(f"user{i}", "wrong", ip="10.9.9.9").status_code for i in range(6)]
    assert codes == [400] * 4 + [429] * 2
    assert token_login("a1", PASSWORD, ip="10.9.9.9").status_code == 429
    assert token_login("a1", PASSWORD, ip="10.9.9.10").status_code == 200


def test_the_failure_window_ends(world, settings):
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = 2
    settings.ATLAS_SIGNIN_WINDOW_SECONDS = 1
    for _ in range(2):
        token_login("a1", "wrong")
    refused = token_login("a1", PASSWORD)
    assert refused.status_code == 429 and refused["Retry-After"] in ("1", "2")
    time.sleep(1.5)  # the window that the first failure opened has closed
    assert token_login("a1", PASSWORD).status_code == 200


def test_hashing_is_capped_so_anonymous_sign_ins_cannot_starve_others(world, settings):
    """With every hashing slot taken, one more sign-in is refused at once (no password hashed: a few ms of CPU
    instead of PBKDF2's), while a signed-in client is served as usual."""
    settings.ATLAS_SIGNIN_CONCURRENCY = 1
    token = token_login("a2", PASSWORD).json()["token"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # production's (tests use MD5)
    a1 = User.objects.get(username="a1")
    a1.set_password(PASSWORD)
    a1.save()
    cache.set(INFLIGHT, 1, timeout=60)  # one sign-in is hashing right now (another request)
    started = time.process_time()
    refused = token_login("a1", PASSWORD)
    cpu = time.process_time() - started
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert "too many sign-ins at once" in refused.json()["detail"]
    hashing = time.process_time()
    User.objects.get(username="a1").check_password(PASSWORD)
    hash_cpu = time.process_time() - hashing
    assert cpu < hash_cpu, (cpu, hash_cpu)  # refused before the password was hashed
    signed_in = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert signed_in.get("/api/queue/").status_code == 200
    cache.set(INFLIGHT, 0, timeout=60)
    assert token_login("a1", PASSWORD).status_code == 200


@pytest.mark.parametrize("door", DOORS)
def test_the_admin_login_and_every_other_door_go_through_one_gate(world, settings, door):
    """A failure on any door counts on every door: one wrong password on each of the four, and the next sign-in, on
    `door`, is refused with 429 and Retry-After, the right password included (before: /admin/login/ called
    authenticate() past the gate, so it allowed unlimited guesses and its failures counted nowhere)."""
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = len(DOORS)
    User.objects.filter(username__in=["a1", "a2"]).update(is_staff=True)  # so that the admin door admits them
    assert admitted(door, DOORS[door]("a1", PASSWORD, ip="10.0.3.1"))
    for i, (name, login) in enumerate(DOORS.items()):
        assert wrong(name, login("a1", f"wrong{i}", ip=f"10.0.4.{i}")), name
    refused = DOORS[door]("a1", PASSWORD, ip="10.0.3.1")
    assert refused_detail(door, refused).startswith("too many failed sign-ins; try again in ")
    assert 1 <= int(refused["Retry-After"]) <= settings.ATLAS_SIGNIN_WINDOW_SECONDS + 1
    if door == "admin":
        assert refused["Content-Type"].startswith("text/plain")
        assert not refused.cookies.get("sessionid")  # nobody signed in
    assert admitted(door, DOORS[door]("a2", PASSWORD, ip="10.0.3.1"))  # another user is not locked out


def test_the_admin_door_is_limited_per_username_and_per_ip(world, settings):
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = 3
    settings.ATLAS_SIGNIN_FAILURES_PER_IP = 5
    User.objects.create_superuser("root", password=PASSWORD)
    codes = [admin_login("root", f"wrong{i}", ip=f"10.0.5.{i}").status_code for i in range(5)]
    assert codes == [200] * 3 + [429] * 2  # the form shown again three times, then refused
    refused = admin_login("root", PASSWORD, ip="10.0.5.9")
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.content.decode()
    assert token_login("root", PASSWORD, ip="10.0.5.9").status_code == 429  # the API door sees the admin's failures
    for i in range(5):
        admin_login(f"guess{i}", "wrong", ip="10.0.6.6")
    assert token_login("a1", PASSWORD, ip="10.0.6.6").status_code == 429  # that IP is spent, on every door
    assert token_login("a1", PASSWORD, ip="10.0.6.7").status_code == 200


def test_the_admin_door_holds_a_hashing_slot(world, settings):
    settings.ATLAS_SIGNIN_CONCURRENCY = 1
    User.objects.create_superuser("root", password=PASSWORD)
    cache.set(INFLIGHT, 1, timeout=60)  # another request is hashing a password right now
    refused = admin_login("root", PASSWORD)
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert refused.content.decode().startswith("too many sign-ins at once; try again in 1 s")
    assert cache.get(INFLIGHT) == 1  # the refused request gave its slot back
    cache.set(INFLIGHT, 0, timeout=60)
    assert admin_login("root", PASSWORD).status_code == 302


def test_authenticate_without_a_request_counts_per_username(world, settings):
    """A management command or a test client's login() calls authenticate() without a request: no client IP, so only
    the username's counter applies, and the gate's refusal reaches the caller (authenticate() swallows
    PermissionDenied, not SignInRefused)."""
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = 2
    settings.ATLAS_SIGNIN_FAILURES_PER_IP = 2
    assert authenticate(username="a1", password="wrong") is None
    assert Client().login(username="a1", password="wrong") is False
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):
        authenticate(username="a1", password=PASSWORD)
    assert token_login("a1", PASSWORD).status_code == 429
    assert token_login("a2", PASSWORD).status_code == 200  # no IP was counted
    assert authenticate(username="a2", password=PASSWORD) is not None
    assert authenticate(username="a2") is None and cache.get(INFLIGHT) == 0  # no password: nothing hashed or counted


# Run by `manage.py shell -c` in a process of its own: authenticate() once per password in ATLAS_TEST_PASSWORDS.
_TRIES = """
import json, os
from django.contrib.auth import authenticate
from annotation.signin import SignInRefused
out = []
for password in os.environ["ATLAS_TEST_PASSWORDS"].split(","):
    try:
        out.append("admitted" if authenticate(username="root", password=password) else "wrong")
    except SignInRefused as refused:
        out.append(refused.reason)
print(json.dumps(out))
"""


@pytest.mark.django_db(transaction=True)  # committed, so that the other processes see the user and the counters
def test_the_counters_are_shared_by_processes_and_survive_them(settings):
    """The limit holds across gunicorn workers and restarts: failures made in one process refuse the next process's
    sign-in and this one's (before: each process counted in its own memory, so the limit was multiplied by the
    workers and reset by every crash)."""
    assert not settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
    settings.ATLAS_SIGNIN_FAILURES_PER_USER = 3
    User.objects.create_superuser("root", password=PASSWORD)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "atlas.settings", "DATABASE_URL": database_url(),
           "ATLAS_SIGNIN_FAILURES_PER_USER": "3"}

    def process(passwords: list[str]) -> list[str]:
        done = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", _TRIES], cwd=REPO,
                              env={**env, "ATLAS_TEST_PASSWORDS": ",".join(passwords)}, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert process(["wrong1", "wrong2"]) == ["wrong", "wrong"]
    assert process(["wrong3", PASSWORD]) == ["wrong", "too many failed sign-ins"]  # a new process: 2 + 1 failures
    refused = admin_login("root", PASSWORD)  # and this process, on the admin door
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= settings.ATLAS_SIGNIN_WINDOW_SECONDS + 1
    cache.clear()
    assert admin_login("root", PASSWORD).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_the_cache_counts_every_failure_of_racing_sign_ins_and_keeps_the_window():
    """incr from many connections at once loses none and keeps the key's expiry (Django's DatabaseCache.incr is
    get-then-set: it lost increments and moved the expiry to the default 300 s)."""
    cache.set("atlas:test:count", 0, timeout=2)
    assert sorted(at_once(lambda: cache.incr("atlas:test:count"), 12)) == list(range(1, 13))
    assert cache.get("atlas:test:count") == 12 and cache.decr("atlas:test:count") == 11
    time.sleep(2.1)
    assert cache.get("atlas:test:count") is None
    with pytest.raises(ValueError):
        cache.incr("atlas:test:count")


def test_tokens_are_stored_hashed_and_expire(world, settings):
    response = token_login("a1", PASSWORD)
    assert response.status_code == 200
    token = response.json()["token"]
    stored = AuthToken.objects.get(user__username="a1")
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128  # SHA-512, not the token
    expiry = stored.expiry
    assert expiry is not None and abs(expiry - (timezone.now() + settings.REST_KNOX["TOKEN_TTL"])) < timedelta(
        minutes=1)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/queue/").status_code == 200
    AuthToken.objects.filter(pk=stored.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/queue/").status_code in (401, 403)


def test_sign_out_revokes_the_token(world):
    token = token_login("a1", PASSWORD).json()["token"]
    other = token_login("a1", PASSWORD).json()["token"]
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/auth/logout/").status_code == 204
    assert client.get("/api/queue/").status_code in (401, 403)  # before: tokens survived logout
    still = APIClient(HTTP_AUTHORIZATION=f"Token {other}")
    assert still.get("/api/queue/").status_code == 200
    assert still.post("/api/auth/logout-all/").status_code == 204
    assert still.get("/api/queue/").status_code in (401, 403)


def test_a_password_change_revokes_every_token(world):
    token = token_login("a1", PASSWORD).json()["token"]
    user = User.objects.get(username="a1")
    user.set_password("another-long-passphrase-2")
    user.save()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token}").get("/api/queue/").status_code in (401, 403)
    user.first_name = "A"
    user.save()  # a save without a password change keeps tokens
    fresh = token_login("a1", "another-long-passphrase-2").json()["token"]
    User.objects.get(username="a1").save()
    assert APIClient(HTTP_AUTHORIZATION=f"Token {fresh}").get("/api/queue/").status_code == 200
