"""A password never sits in a URI of the config, whatever the field and wherever in the
URI it is written (user info, query string, libpq keywords, a connection string inside the
database name): refused with the ``${NAME}`` fix and never shown; with ``${NAME}`` it is
accepted and read from the environment when tunelab connects."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import sqlalchemy
import yaml
from typer.testing import CliRunner

from tests.conftest import make_config
from tunelab.cli import app
from tunelab.errors import ConfigError
from tunelab.uris import expand, masked, problem, scrub, secrets_in

SECRETS = ["Zq9xSecret", "Zq9x@Sec/ret", "Zq9x S&c=t", "Zq9x%Sec:ret?#"]


def _conninfo(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    return f"host=db user=u password='{escaped}'"


def _nested_uri(password: str) -> str:
    return f"postgresql://u:{quote(password, safe='')}@h/d"


# where a password can be written in a URI: (form, template taking the escaped password)
FORMS: dict[str, Any] = {
    "user info": lambda s, pw: f"{s}://tunelab:{quote(pw, safe='')}@db:5432/tunelab",
    "user info, no user": lambda s, pw: f"{s}://:{quote(pw, safe='')}@db/tunelab",
    "user info, unescaped": lambda s, pw: f"{s}://tunelab:{pw}@db/tunelab",
    "query": lambda s, pw: f"{s}://u@db/tunelab?password={quote(pw, safe='')}",
    "query among others": lambda s, pw: (
        f"{s}://u@db/tunelab?sslmode=require&password={quote(pw, safe='')}&application_name=x"
    ),
    "query, upper case key": lambda s, pw: f"{s}://u@db/x?PASSWORD={quote(pw, safe='')}",
    "query, escaped key": lambda s, pw: f"{s}://u@db/x?pass%77ord={quote(pw, safe='')}",
    "query, semicolons": lambda s, pw: f"{s}://u@db/x?sslmode=require;password={quote(pw)}",
    "query, sslpassword": lambda s, pw: f"{s}://u@db/x?sslpassword={quote(pw, safe='')}",
    "query, passfile": lambda s, pw: f"{s}://u@db/x?passfile={quote(pw, safe='')}",
    "query, token": lambda s, pw: f"{s}://db/x?access_token={quote(pw, safe='')}",
    "fragment": lambda s, pw: f"{s}://u@db/x#password={quote(pw, safe='')}",
    "conninfo as the dbname": lambda s, pw: f"{s}:///?dbname={quote(_conninfo(pw), safe='')}",
    "conninfo as the path": lambda s, pw: f"{s}://db/{quote(_conninfo(pw), safe='')}",
    "a URI as the dbname": lambda s, pw: f"{s}://db/x?dbname={quote(_nested_uri(pw), safe='')}",
}
SCHEMES = ["postgresql", "postgresql+psycopg", "mysql+pymysql", "http", "https"]
FIELDS = {
    "search.storage": ("search", "storage"),
    "tracking.mlflow": ("tracking", "mlflow"),
    "data.options.url": ("data", "options"),  # any other field that holds a URI
}


def config_with(field: str, uri: str) -> Any:
    section, key = FIELDS[field]
    if field == "data.options.url":
        return make_config(data={"source": "sklearn:iris", "options": {"url": uri}})
    return make_config(**{section: {key: uri}})


CASES = list(itertools.product(FORMS, SCHEMES, SECRETS))


@pytest.mark.parametrize(("form", "scheme", "secret"), CASES)
def test_a_password_anywhere_in_a_uri_is_found_and_masked(
    form: str, scheme: str, secret: str
) -> None:
    uri = FORMS[form](scheme, secret)
    assert secrets_in(uri), uri
    shown = masked(uri)
    for value in {secret, quote(secret, safe=""), quote(secret)}:
        assert value not in shown
    assert "***" in shown


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("form", "secret"), list(itertools.product(FORMS, SECRETS[:2])))
def test_every_uri_field_refuses_a_password_with_the_reference_fix(
    field: str, form: str, secret: str
) -> None:
    uri = FORMS[form]("postgresql", secret)
    with pytest.raises(ConfigError) as caught:
        config_with(field, uri)
    message = str(caught.value)
    assert f"{field}: " in message
    assert secret not in message and quote(secret, safe="") not in message
    assert "holds a password" in message and "write ${NAME} in its place" in message


@pytest.mark.parametrize("form", FORMS)
def test_a_reference_in_place_of_the_password_is_accepted_and_expanded_when_connecting(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Zq9x@Sec/r&t:?#%"
    monkeypatch.setenv("TUNELAB_TEST_PW", secret)
    found = secrets_in(FORMS[form]("postgresql", secret))
    template = FORMS[form]("postgresql", "PLACEHOLDER")
    uri = template.replace("PLACEHOLDER", "${TUNELAB_TEST_PW}")
    if form.startswith(("conninfo", "a URI")):
        return  # a whole connection string: its own quoting; the reference is not escaped
    assert found and not secrets_in(uri)
    config_with("search.storage", uri)  # accepted
    connect = expand(uri, field="search.storage")
    if form.startswith("user info"):
        assert sqlalchemy.engine.make_url(connect).password == secret
    else:
        parts = urlsplit(connect)
        values = dict(parse_qsl(parts.query or parts.fragment, separator="&"))
        values |= dict(parse_qsl((parts.query or parts.fragment).replace(";", "&")))
        assert secret in values.values()
    assert secret not in scrub(f"could not connect to {connect}", connect)


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://tunelab@db:5432/tunelab",
        "postgresql://tunelab:${TUNELAB_DB_PASSWORD}@db/tunelab?sslmode=require",
        "postgresql://u@db/x?password=${A}${B}",
        "sqlite:////tmp/with@sign/study.db",
        "sqlite:///${TUNELAB_FOLDER}/study.db",
        "http://mlflow.example:5000",
        "https://u@mlflow.example/path?experiment=3",
        "file:mlruns",
        "databricks://profile",
        "journal:/tmp/study.log",
    ],
)
def test_uris_without_a_literal_password_pass(uri: str) -> None:
    assert problem("search.storage", uri, variable="X") is None
    assert masked(uri) == uri


def test_a_password_in_the_query_string_never_reaches_config_yaml_or_the_output(
    tmp_path: Path,
) -> None:
    """The issue's case: accepted, written to config.yaml and echoed in the error."""
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(make_config().model_dump(mode="json")))
    url = "postgresql://u@127.0.0.1:1/db?password=QuerySecretPW"
    for command in ("check", "run"):
        result = CliRunner().invoke(
            app,
            [command, str(config), "--set", f"search.storage={url}"]
            + (["--out", str(tmp_path / "run")] if command == "run" else []),
        )
        assert result.exit_code == 2, result.output
        assert "QuerySecretPW" not in result.output
        assert "?password=${TUNELAB_DB_PASSWORD}" in result.output.replace("\n", "")
    assert not (tmp_path / "run").exists()


def test_a_password_in_a_tracking_uri_is_refused_like_a_storage_one() -> None:
    """Issue 27: http://bob:PASSWORD@host was written to config.yaml and printed."""
    with pytest.raises(ConfigError) as caught:
        make_config(tracking={"mlflow": "http://bob:BobSecret9@host"})
    message = str(caught.value)
    assert "BobSecret9" not in message and "http://bob:***@host" in message
    assert "http://bob:${TUNELAB_MLFLOW_PASSWORD}@host" in message
    assert "MLFLOW_TRACKING_PASSWORD" in message


def test_a_connection_string_given_as_the_storage_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(search={"storage": "host=db password=Zq9xSecret user=u"})
    assert "Zq9xSecret" not in str(caught.value)
    assert "password=***" in str(caught.value)


def test_a_question_mark_inside_a_query_value_stays_inside_the_masked_value() -> None:
    assert masked("postgresql://u@db/x?password=Zq9?x&sslmode=require") == (
        "postgresql://u@db/x?password=***&sslmode=require"
    )
