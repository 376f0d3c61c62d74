"""Sign-in defences (issue 14, item 2): failure limits with 429 + Retry-After, a cap on concurrent password hashing,
tokens that are hashed, expire, and are revoked by sign-out and by a password change."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def token_login(username: str, password: str, ip: str = "10.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/api/auth/token/", {"username": username, "password": password},
                                          format="json")


def session_login(username: str, password: str, ip: str = "10.0.0.1"):
    client = APIClient(REMOTE_ADDR=ip, enforce_csrf_checks=True)
    client.get("/api/me/")
    return client.post("/api/auth/login/", {"username": username, "password": password}, format="json",
                       HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)


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
    cache.set("atlas:signin:inflight", 1, timeout=60)  # one sign-in is hashing right now (another request)
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
    cache.set("atlas:signin:inflight", 0, timeout=60)
    assert token_login("a1", PASSWORD).status_code == 200


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
