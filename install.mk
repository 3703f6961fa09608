# SPDX-License-Identifier: GPL-2.0
#
# Installing evq on a test box: included by the top-level Makefile.
# Documentation/install.rst is the guide.
#
#   make install [DESTDIR=STAGE] [PREFIX=/usr/local]
#       everything below; with DESTDIR empty it also runs depmod and, when
#       systemd runs the machine, creates the deliverd user and spool and
#       reloads systemd and udev
#   make install-module   evq.ko for INSTALL_KVERS (default KVER) under
#                         MODDIR/VERSION/updates, and install-module-conf
#   make install-module-conf  the module's udev rule, modprobe.d and
#                         modules-load.d files alone (the evq-dkms package
#                         ships these beside the source, not evq.ko)
#   make install-lib      libevq: shared and static, headers, pkg-config,
#                         man pages (lib/Makefile)
#   make install-tools    deliverd, deliverctl, evqstat, waitstat and their
#                         man pages (make progs builds them alone)
#   make install-conf     deliverd's unit, user, spool and /etc files
#   make dkms-install     the module's source to /usr/src/evq-VERSION, then
#                         DKMS builds and installs it for DKMS_KVERS (every
#                         kernel whose headers are installed)
#   make dkms-remove      the reverse
#
# The system's own places (udev, systemd, the module tree, /etc) are not
# under PREFIX where the system would not look: MODDIR and SYSCONFDIR are
# absolute; the systemd and udev directories follow PREFIX, since both
# read /usr/local/lib as well as /usr/lib.  Existing files in /etc are
# never overwritten.

VERSION		:= $(shell cat $(TOP)/VERSION)
PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
SBINDIR		?= $(PREFIX)/sbin
LIBDIR		?= $(PREFIX)/lib
INCLUDEDIR	?= $(PREFIX)/include
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= /etc
# udev, systemd and kmod's drop-in directories: never multiarch.
SYSLIBDIR	?= $(PREFIX)/lib
UDEVRULESDIR	?= $(SYSLIBDIR)/udev/rules.d
UNITDIR		?= $(SYSLIBDIR)/systemd/system
SYSUSERSDIR	?= $(SYSLIBDIR)/sysusers.d
TMPFILESDIR	?= $(SYSLIBDIR)/tmpfiles.d
MODULESLOADDIR	?= $(SYSLIBDIR)/modules-load.d
MODPROBEDIR	?= $(SYSCONFDIR)/modprobe.d
MODDIR		?= /lib/modules
INSTALL_KVERS	?= $(KVER)
DESTDIR		?=
INSTALL		?= install
DEPMOD		?= depmod

DKMS		?= dkms
DKMS_SRCTREE	?= /usr/src
# Extra options for every dkms call, e.g. --dkmstree DIR --sourcetree DIR
# --installtree DIR to build without touching the system (the tests do).
DKMS_FLAGS	?=
DKMS_KVERS	?= $(shell for d in /lib/modules/*/build; do \
		[ -f $$d/Makefile ] && basename $$(dirname $$d); done)

# Whether this install is the live system, run by systemd.
LIVE_SYSTEMD = $(if $(DESTDIR),,$(wildcard /run/systemd/system))

.PHONY: install install-module install-module-conf install-lib progs \
	install-tools install-conf dkms-source dkms-install dkms-remove deb

install: install-module install-lib install-tools install-conf

install-module: install-module-conf \
		$(foreach k,$(INSTALL_KVERS),$(BUILD)/kmod/$(k)/evq.ko)
	@set -e; for k in $(INSTALL_KVERS); do \
		$(INSTALL) -D -m 644 $(BUILD)/kmod/$$k/evq.ko \
			$(DESTDIR)$(MODDIR)/$$k/updates/evq.ko; \
		echo "  INSTALL $(DESTDIR)$(MODDIR)/$$k/updates/evq.ko"; \
		if [ -z "$(DESTDIR)" ]; then $(DEPMOD) -a $$k; \
		else echo "  DEPMOD  skipped (DESTDIR): run 'depmod -a $$k' once installed"; fi; \
	done

install-module-conf:
	$(INSTALL) -D -m 644 $(TOP)/dist/60-evq.rules $(DESTDIR)$(UDEVRULESDIR)/60-evq.rules
	$(INSTALL) -D -m 644 $(TOP)/dist/evq.modules-load.conf \
		$(DESTDIR)$(MODULESLOADDIR)/evq.conf
	@$(call install_conf,$(TOP)/dist/evq.modprobe.conf,$(MODPROBEDIR)/evq.conf)
	$(if $(LIVE_SYSTEMD),udevadm control --reload || \
		echo "  NOTE    udev did not reload its rules; they apply at the next boot")

install-lib:
	$(MAKE) -C $(TOP)/lib install O=$(BUILD)/lib DESTDIR=$(DESTDIR) \
		PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) INCLUDEDIR=$(INCLUDEDIR) \
		MANDIR=$(MANDIR)

# Only the programs themselves: the sanitizer builds and tests are for
# make check.  The Debian package builds them (progs) before installing.
progs: lib
	$(MAKE) -C $(TOP)/tools/deliverd $(BUILD)/deliverd/deliverd \
		$(BUILD)/deliverd/deliverctl
	$(MAKE) -C $(TOP)/tools/evqstat $(BUILD)/evqstat/evqstat
	$(MAKE) -C $(TOP)/tools/probes $(BUILD)/probes/waitstat

install-tools: progs
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8
	$(INSTALL) -m 755 $(BUILD)/deliverd/deliverd $(BUILD)/deliverd/deliverctl \
		$(BUILD)/probes/waitstat $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 755 $(BUILD)/evqstat/evqstat $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(TOP)/tools/deliverd/deliverd.8 \
		$(TOP)/tools/deliverd/deliverctl.8 $(TOP)/tools/evqstat/evqstat.8 \
		$(TOP)/tools/probes/waitstat.8 $(DESTDIR)$(MANDIR)/man8/

install-conf:
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $(TOP)/dist/deliverd.service \
		> $(DESTDIR)$(UNITDIR)/deliverd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/deliverd.service
	$(INSTALL) -D -m 644 $(TOP)/dist/deliverd.sysusers.conf \
		$(DESTDIR)$(SYSUSERSDIR)/deliverd.conf
	$(INSTALL) -D -m 644 $(TOP)/dist/deliverd.tmpfiles.conf \
		$(DESTDIR)$(TMPFILESDIR)/deliverd.conf
	$(INSTALL) -D -m 644 $(TOP)/dist/deliverd.modules-load.conf \
		$(DESTDIR)$(MODULESLOADDIR)/deliverd.conf
	@$(call install_conf,$(TOP)/dist/deliverd.conf,$(SYSCONFDIR)/deliverd/deliverd.conf)
	@$(call install_conf,$(TOP)/dist/deliverd.routes,$(SYSCONFDIR)/deliverd/routes)
	$(if $(LIVE_SYSTEMD),systemd-sysusers deliverd.conf && \
		systemd-tmpfiles --create deliverd.conf && systemctl daemon-reload)

# install_conf SRC,DEST: a configuration file the administrator owns once
# it is there: an existing one is kept, and the new default put beside it.
install_conf = set -e; d=$(DESTDIR)$(2); \
	if [ -e $$d ] && ! cmp -s $(1) $$d; then \
		$(INSTALL) -m 644 $(1) $$d.dist; \
		echo "  KEEP    $$d (the new default is $$d.dist)"; \
	else $(INSTALL) -D -m 644 $(1) $$d; echo "  INSTALL $$d"; fi

# --- DKMS ------------------------------------------------------------------

DKMS_SRC = $(DESTDIR)$(DKMS_SRCTREE)/evq-$(VERSION)

# The module's source as DKMS wants it: dkms.conf at the top, kmod/ and
# the uapi header beside it as in this tree, so kmod/Kbuild finds both.
dkms-source:
	rm -rf $(DKMS_SRC)
	$(INSTALL) -d $(DKMS_SRC)/kmod $(DKMS_SRC)/uapi/linux
	$(INSTALL) -m 644 $(filter $(TOP)/kmod/%,$(KMOD_SRCS)) $(DKMS_SRC)/kmod/
	$(INSTALL) -m 644 $(TOP)/uapi/linux/evq.h $(DKMS_SRC)/uapi/linux/
	$(INSTALL) -m 644 $(TOP)/VERSION $(DKMS_SRC)/
	sed -e 's|#MODULE_VERSION#|$(VERSION)|' $(TOP)/dkms.conf > $(DKMS_SRC)/dkms.conf

dkms-install: dkms-source
	$(DKMS) add -m evq -v $(VERSION) $(DKMS_FLAGS)
	@set -e; for k in $(DKMS_KVERS); do \
		echo "  DKMS    evq/$(VERSION) for $$k"; \
		$(DKMS) install -m evq -v $(VERSION) -k $$k $(DKMS_FLAGS); \
	done

dkms-remove:
	-$(DKMS) remove -m evq -v $(VERSION) --all $(DKMS_FLAGS)
	rm -rf $(DKMS_SRC)

# --- Debian packages ---------------------------------------------------------

DEB_DIR = $(BUILD)/deb

# make deb: evq-dkms, libevq1, libevq-dev, deliverd and evq-tools (and
# their debug symbols) from the committed tree, HEAD, exported into
# build/deb/evq-VERSION so that the working copy stays as it is; the
# .debs, .changes and the native source package land in build/deb.
# Documentation/debian.rst is the guide.
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)
	git -C $(TOP) archive --prefix=evq-$(VERSION)/ HEAD | tar -x -C $(DEB_DIR)
	cd $(DEB_DIR)/evq-$(VERSION) && dpkg-buildpackage -us -uc
