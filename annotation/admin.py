from django.contrib import admin

from annotation import models


class OrganInline(admin.TabularInline):
    model = models.Organ
    extra = 0


@admin.register(models.LabelSet)
class LabelSetAdmin(admin.ModelAdmin):
    list_display = ["name", "display_name"]
    inlines = [OrganInline]


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "label_set", "created"]


class SourceLabelInline(admin.TabularInline):
    model = models.SourceLabel
    extra = 0
    readonly_fields = ["label_file", "checksum", "source_path", "created"]


@admin.register(models.Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "shape", "spacing", "source_format", "created"]
    list_filter = ["dataset", "source_format"]
    search_fields = ["name", "checksum"]
    readonly_fields = ["checksum", "shape", "spacing", "affine", "dtype", "created"]
    inlines = [SourceLabelInline]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "arch", "size", "parent", "created"]
    list_filter = ["arch", "size"]


@admin.register(models.Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ["number", "status", "converged", "stopped_by", "created", "finished"]
    list_filter = ["status"]


@admin.register(models.Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "round", "priority", "status", "assignee", "lease_holder", "lease_expires"]
    list_filter = ["status", "round"]
    search_fields = ["case__name"]
    raw_id_fields = ["case", "assignee", "lease_holder"]


class RevisionTagInline(admin.TabularInline):
    model = models.RevisionTag
    extra = 0


@admin.register(models.Revision)
class RevisionAdmin(admin.ModelAdmin):
    """Revisions are immutable: the admin shows them and never edits them."""

    list_display = ["case", "number", "kind", "author", "seconds_spent", "created"]
    list_filter = ["kind"]
    search_fields = ["case__name", "author__username"]
    inlines = [RevisionTagInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["revision", "decision", "reviewer", "created"]
    list_filter = ["decision"]


@admin.register(models.ErrorTag)
class ErrorTagAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
