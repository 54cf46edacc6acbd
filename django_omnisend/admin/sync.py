"""Admin pages for the sync: per-user states with retry/discard, the outbox, a health summary.

Built for large tables: no full result counts, the user joined in the same query, filters
on indexed columns, and the summary is a handful of aggregates.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import OutboxItem, SyncState
from ..sync.health import health
from ..sync.reasons import describe


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "email",
        "state",
        "why",
        "dirty",
        "attempts",
        "next_attempt_at",
        "last_status",
        "synced_at",
    )
    list_filter = ("state", "reason", "dirty", "connection_key")
    # Our own columns only: the user model may have no e-mail column (tests/custom_users).
    search_fields = ("email", "address", "wanted_address", "contact_id")
    list_select_related = ("user",)
    show_full_result_count = False
    ordering = ("-updated_at",)
    actions = ("retry_now", "discard")
    change_list_template = "admin/django_omnisend/syncstate/change_list.html"
    readonly_fields = [
        *(f.name for f in SyncState._meta.fields if f.name != "reason"),
        "reason",
        "why",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows are made by saves, never by hand

    @admin.display(description=_("reason"), ordering="reason")
    def why(self, obj: SyncState) -> str:
        """The reason as a sentence: what happened and what to do (the code is filterable)."""
        return describe(obj.reason) or "-"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.action(description=_("Retry now"), permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(
            dirty=True,
            state=SyncState.State.PENDING,
            reason="",
            attempts=0,
            next_attempt_at=timezone.now(),
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d user will be sent on the next drain.",
                "%(count)d users will be sent on the next drain.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Discard (stop trying)"), permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(
            dirty=False,
            state=SyncState.State.SKIPPED,
            reason="discarded",
            # A clean row is always due the moment a save makes it dirty again.
            next_attempt_at=timezone.now(),
        )
        self.message_user(
            request,
            ngettext(
                "%(count)d user will not be sent until they change again.",
                "%(count)d users will not be sent until they change again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), "omnisend_health": health()}
        return super().changelist_view(request, extra_context)


@admin.register(OutboxItem)
class OutboxItemAdmin(admin.ModelAdmin):
    list_display = ("kind", "state", "connection_key", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("kind", "state")
    show_full_result_count = False
    actions = ("retry_now",)
    # The payload of an erasure is an address being forgotten: show only the hash.
    exclude = ("email",)
    readonly_fields = [f.name for f in OutboxItem._meta.fields if f.name != "email"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.action(description=_("Retry now"), permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.exclude(state=OutboxItem.State.SENT).update(
            state=OutboxItem.State.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        self.message_user(
            request, _("%(count)d item(s) queued again.") % {"count": count}, messages.SUCCESS
        )
