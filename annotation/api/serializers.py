from rest_framework import serializers

from annotation.models import Case, LabelSet, Organ


class OrganSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organ
        fields = ["value", "name", "display_name", "color"]


class LabelSetSerializer(serializers.ModelSerializer):
    organs = OrganSerializer(many=True, read_only=True)

    class Meta:
        model = LabelSet
        fields = ["id", "name", "display_name", "description", "organs"]


class CaseSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    labelled_organs = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = ["id", "name", "dataset", "shape", "spacing", "affine", "dtype", "checksum", "source_format",
                  "created", "labelled_organs"]

    def get_labelled_organs(self, case: Case) -> list[str]:
        return sorted({organ.name for label in case.source_labels.all() for organ in label.organs.all()})
