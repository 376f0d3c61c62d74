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
