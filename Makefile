# xdist: build, install and uninstall. See packaging/README.md.
#
#   make                                      release build of xdist and the first-party plugins
#   make install PREFIX=/usr/local DESTDIR=   install (records a manifest)
#   make uninstall PREFIX=/usr/local DESTDIR= remove exactly what install wrote
#   make deb                                  packaging/deb/build.sh: xdist + xdist-plugins .deb
#   make test-packaging                       tests/packaging/test.sh
#
# The plugin directory is not configurable on purpose: xdist looks for system plugins in
# <directory of the binary>/../lib/xdist/plugins, i.e. $(PREFIX)/lib/xdist/plugins.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
CARGOFLAGS ?=
# 1: install the plugin API's rustdoc HTML into share/doc/xdist/plugin-api/ (0: skip it).
API_DOCS ?= 1
# Where install records what it wrote (a path under PREFIX, without DESTDIR).
MANIFEST ?= $(PREFIX)/share/xdist/install-manifest.txt

PLUGIN_CRATES := $(notdir $(wildcard plugins/*))
PLUGIN_LIBS := $(subst -,_,$(PLUGIN_CRATES))
REL := $(CARGO_TARGET_DIR)/release
GEN := $(CARGO_TARGET_DIR)/generated

.PHONY: all build generated api-docs install uninstall deb test-packaging clean-generated

all: build generated api-docs

# Without cargo on PATH (typically `sudo make install` after `make`), the built files are used.
HAVE_CARGO := $(shell command -v $(CARGO) 2>/dev/null)

build:
ifneq ($(HAVE_CARGO),)
	$(CARGO) build --release $(CARGOFLAGS) -p xdist-cli $(addprefix -p ,$(PLUGIN_CRATES))
else
	@for f in $(REL)/xdist $(addprefix $(REL)/lib,$(addsuffix .so,$(PLUGIN_LIBS))); do \
	  test -f $$f || { echo "$(CARGO) not found and $$f not built: run make first" >&2; exit 1; }; done
	@echo "$(CARGO) not found: installing what is already built in $(REL)"
endif

# Man page and completions come from the binary's clap definitions (hidden --generate).
generated: build
	mkdir -p $(GEN)
	$(REL)/xdist --generate man > $(GEN)/xdist.1
	$(REL)/xdist --generate bash > $(GEN)/xdist.bash
	$(REL)/xdist --generate zsh > $(GEN)/_xdist
	$(REL)/xdist --generate fish > $(GEN)/xdist.fish

# rustdoc of xdist-plugin-api alone, in its own target dir so no other crate's docs (and no
# stale pages) leak in.
api-docs:
ifeq ($(API_DOCS)$(if $(HAVE_CARGO),,nocargo),1)
	rm -rf $(CARGO_TARGET_DIR)/plugin-api-doc/doc
	$(CARGO) doc $(CARGOFLAGS) -p xdist-plugin-api --no-deps --target-dir $(CARGO_TARGET_DIR)/plugin-api-doc
	rm -rf $(GEN)/plugin-api
	mkdir -p $(GEN)
	cp -r $(CARGO_TARGET_DIR)/plugin-api-doc/doc $(GEN)/plugin-api
	printf '%s\n' '<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=xdist_plugin_api/index.html"><title>xdist plugin API</title><a href="xdist_plugin_api/index.html">xdist_plugin_api</a>' > $(GEN)/plugin-api/index.html
else ifeq ($(API_DOCS),1)
	@test -f $(GEN)/plugin-api/index.html || { echo "$(CARGO) not found and the API docs not built: run make first, or API_DOCS=0" >&2; exit 1; }
endif

install: generated api-docs
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' TARGET_DIR='$(CARGO_TARGET_DIR)' MANIFEST_PATH='$(MANIFEST)' \
	API_DOCS='$(API_DOCS)' PLUGIN_LIBS='$(PLUGIN_LIBS)' packaging/install.sh install

uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' TARGET_DIR='$(CARGO_TARGET_DIR)' MANIFEST_PATH='$(MANIFEST)' \
	packaging/install.sh uninstall

deb:
	packaging/deb/build.sh

test-packaging:
	tests/packaging/test.sh

clean-generated:
	rm -rf $(GEN) $(CARGO_TARGET_DIR)/plugin-api-doc
