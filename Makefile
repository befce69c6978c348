# roster: build, demo, test and benchmark.
#
#   make demo    build roster and sync examples/ into an embedded SQLite database
#   make test    unit, end-to-end and sandbox tests, plus fmt and clippy
#   make bench   CSV (1M rows) and group (100k groups) against sqlite3 .import, LDAP (100k) against ldapsearch,
#                plugin start-up (cold and warm) and component sizes,
#                a mapping script over 100k CSV rows against the same sync without it
#
# Every target does its own set-up on a fresh Debian machine that has the Rust toolchain
# (rustup): the wasm32-wasip2 target and the Debian packages a target needs.

SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
ROSTER := $(TARGET_DIR)/release/roster
DEMO_DIR := $(TARGET_DIR)/demo
SDK_TOOLS := $(TARGET_DIR)/sdk-tools

# apt-get as root, or through sudo when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
# Installs Debian packages when a command is missing: $(call need,COMMAND,PACKAGES)
need = command -v $(1) >/dev/null 2>&1 || ($(APT) update && $(APT) install -y $(2))

.PHONY: all setup setup-bench build demo test bench clean-demo

all: build

## Set-up (idempotent) ---------------------------------------------------------------------

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@# ---- System packages for the test suites of later connectors go here. ----------------
	@# LDAP tests: a throwaway OpenLDAP server (slapd, slapadd; ldapmodify from ldap-utils).
	@$(call need,slapd,slapd ldap-utils)
	@$(call need,ldapmodify,ldap-utils)
	@# Active Directory tests: a throwaway Samba AD DC (samba needs winbindd at start; the
	@# harness makes its own TLS CA with openssl). The Google tests make their service
	@# account's key pair with openssl too; the Unix tests read `getent` (libc-bin).
	@$(call need,samba-tool,samba winbind)
	@$(call need,openssl,openssl)
	@# PostgreSQL store tests: a throwaway server (initdb, postgres) from Debian's package,
	@# whose binaries live in /usr/lib/postgresql/N/bin, off PATH.
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ($(APT) update && $(APT) install -y postgresql)
	@# Python and JavaScript SDK tests: componentize-py in a venv, componentize-js and jco
	@# from npm, both under target/sdk-tools (pinned versions).
	@$(call need,python3,python3 python3-venv)
	@$(call need,npm,nodejs npm)
	@test -x $(SDK_TOOLS)/venv/bin/componentize-py || ( \
	    python3 -m venv $(SDK_TOOLS)/venv && \
	    $(SDK_TOOLS)/venv/bin/pip install -q componentize-py==0.25.1 )
	@# SCIM connector tests: the reference server scim2-server from PyPI, in its own venv.
	@test -x $(SDK_TOOLS)/scim-venv/bin/scim2-server || ( \
	    python3 -m venv $(SDK_TOOLS)/scim-venv && \
	    $(SDK_TOOLS)/scim-venv/bin/pip install -q scim2-server==0.8.3 )
	@# SCIM compliance: the third-party suite scim2-tester (and its httpx2 client) in the same venv.
	@$(SDK_TOOLS)/scim-venv/bin/python -c 'import scim2_tester, httpx2' 2>/dev/null || \
	    $(SDK_TOOLS)/scim-venv/bin/python -m pip install -q scim2-tester==0.5.2 httpx2==2.17.0
	@# Notification tests: a recording SMTP server (aiosmtpd, STARTTLS and AUTH) in the same venv.
	@$(SDK_TOOLS)/venv/bin/python -c 'import aiosmtpd' 2>/dev/null || \
	    $(SDK_TOOLS)/venv/bin/python -m pip install -q aiosmtpd==1.4.6
	@test -x $(SDK_TOOLS)/node/node_modules/.bin/componentize-js || ( \
	    mkdir -p $(SDK_TOOLS)/node && cd $(SDK_TOOLS)/node && \
	    npm install --silent --no-audit --no-fund \
	        @bytecodealliance/componentize-js@0.23.0 @bytecodealliance/jco@1.35.0 )
	@# Console test of `roster serve`: Debian's headless Chromium driven by playwright-core
	@# (npm, pinned; no browser download: it uses /usr/bin/chromium).
	@$(call need,chromium,chromium)
	@test -d $(SDK_TOOLS)/browser/node_modules/playwright-core || ( \
	    mkdir -p $(SDK_TOOLS)/browser && cd $(SDK_TOOLS)/browser && \
	    npm install --silent --no-audit --no-fund playwright-core@1.65.2 )
	@# ------------------------------------------------------------------------------------

setup-bench: setup
	@$(call need,sqlite3,sqlite3)
	@test -x /usr/bin/time || ($(APT) update && $(APT) install -y time)
	@# bench/serve_bench.sh: an HTTP load generator.
	@$(call need,wrk,wrk)

## Build -----------------------------------------------------------------------------------

build: setup
	$(CARGO) build --release -p roster

## Demo: a real sync of examples/ ---------------------------------------------------------

demo: build
	rm -rf $(DEMO_DIR)
	mkdir -p $(DEMO_DIR)
	cp -r examples/. $(DEMO_DIR)/
	cd $(DEMO_DIR) && $(ROSTER) sync
	cd $(DEMO_DIR) && $(ROSTER) users list
	cd $(DEMO_DIR) && $(ROSTER) groups list
	@echo
	@echo "Database: $(DEMO_DIR)/roster.db   (try: cd $(DEMO_DIR) && $(ROSTER) runs list)"

## Tests ----------------------------------------------------------------------------------

# Suites run on both stores. (`postgres` is PostgreSQL's own; `sdk*`, `contract`, `sandbox`
# and the emulators' write no database of roster's.)
PG_SUITES := cli_csv admin authority fields script serve notify scim scim_push crash \
	ldap ldap_ad entra google unix scim_source

test: setup
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path plugins/Cargo.toml --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	@# The end-to-end suites that touch the database, again on PostgreSQL (tests/common:
	@# ROSTER_TEST_STORE; each binary starts one server, a database per test).
	ROSTER_TEST_STORE=postgres $(CARGO) test -p roster $(addprefix --test ,$(PG_SUITES))
	$(CARGO) test --manifest-path plugins/Cargo.toml

## Benchmark ------------------------------------------------------------------------------

bench: setup-bench
	bash bench/csv_bench.sh
	bash bench/groups_bench.sh
	bash bench/ldap_bench.sh
	bash bench/script_bench.sh
	bash bench/plugin_start.sh
