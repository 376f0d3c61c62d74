"""Output serializers of the lead dashboard's responses: the schema's types (and so the frontend's generated ones)
and what the views render. Each mirrors what its selector returns (selectors/dashboard.py, selectors/quality.py).
"""

from __future__ import annotations

from rest_framework import serializers as s

from annotation.models import Job, Round, Task


def _counts() -> s.DictField:
    """{name: count}."""
    return s.DictField(child=s.IntegerField())


def _matrix() -> s.ListField:
    """A square matrix of Dice values (null: no pair to compare)."""
    return s.ListField(child=s.ListField(child=s.FloatField(allow_null=True)))


def _when(**kwargs) -> s.CharField:
    """An ISO 8601 timestamp (or null)."""
    return s.CharField(allow_null=True, help_text="ISO 8601", **kwargs)


class RoundRef(s.Serializer):
    number = s.IntegerField()
    status = s.ChoiceField(choices=Round.Status.choices)
    converged = s.BooleanField(allow_null=True)


class AnnotatorRow(s.Serializer):
    assigned = s.IntegerField()
    leased = s.IntegerField()
    revised = s.IntegerField()
    confirmed = s.IntegerField()
    skipped = s.IntegerField()
    revised_all = s.IntegerField()
    confirmed_all = s.IntegerField()
    median_minutes = s.FloatField(allow_null=True)


class OrganRow(s.Serializer):
    attention_ml = s.FloatField()
    cases = s.IntegerField()
    revised_cases = s.IntegerField()
    revised_voxels = s.IntegerField()
    tags = s.IntegerField()


class Lease(s.Serializer):
    task = s.IntegerField()
    case = s.CharField()
    priority = s.FloatField()
    holder = s.CharField()
    leased_at = _when()
    expires = _when()
    held_minutes = s.FloatField(allow_null=True)
    expired = s.BooleanField()


class DayCount(s.Serializer):
    day = s.CharField(help_text="ISO date")
    revised = s.IntegerField()
    confirmed = s.IntegerField()


class DayAnnotatorCount(DayCount):
    annotator = s.CharField()


class Pace(s.Serializer):
    minutes_per_case = s.FloatField()
    hours = s.FloatField()
    working_days = s.FloatField()
    hours_per_day = s.FloatField()


class Overview(s.Serializer):
    round = RoundRef(allow_null=True)
    tasks_by_status = _counts()
    by_annotator = s.DictField(child=AnnotatorRow())
    by_organ = s.DictField(child=OrganRow())
    leases = Lease(many=True)
    annotators = s.ListField(child=s.CharField())
    throughput_per_day = DayCount(many=True)
    per_day_by_annotator = DayAnnotatorCount(many=True)
    median_minutes_per_case = s.FloatField()
    pace = s.ChoiceField(choices=["measured", "default"])
    timed_revisions = s.IntegerField()
    remaining_tasks = s.IntegerField()
    time_left = Pace()
    time_left_at_default_pace = Pace()


class RankedTask(s.Serializer):
    id = s.IntegerField()
    rank = s.IntegerField()
    open_rank = s.IntegerField(allow_null=True)
    case = s.CharField()
    case_id = s.IntegerField()
    priority = s.FloatField()
    status = s.ChoiceField(choices=Task.Status.choices)
    assignee = s.CharField(allow_null=True)
    lease_holder = s.CharField(allow_null=True)
    lease_expires = _when()


class RankedPage(s.Serializer):
    round = s.IntegerField(allow_null=True)
    count = s.IntegerField()
    open = s.IntegerField()
    offset = s.IntegerField()
    limit = s.IntegerField()
    results = RankedTask(many=True)


class CurvePoint(s.Serializer):
    rank = s.IntegerField()
    case_id = s.IntegerField()
    case = s.CharField()
    size_ml = s.FloatField()
    revised = s.BooleanField()
    confirmed = s.BooleanField()


class AttentionCurve(RoundRef):
    round = s.IntegerField()
    number = None
    cases = CurvePoint(many=True)


class AttentionCurves(s.Serializer):
    rounds = AttentionCurve(many=True)


class AttentionSummary(s.Serializer):
    cases = s.IntegerField()
    total_ml = s.FloatField()
    mean_ml = s.FloatField(allow_null=True)
    median_ml = s.FloatField(allow_null=True)
    p90_ml = s.FloatField(allow_null=True)
    max_ml = s.FloatField(allow_null=True)
    zero_cases = s.IntegerField()


class OrganDice(s.Serializer):
    mean = s.FloatField(allow_null=True)
    min = s.FloatField()
    n = s.IntegerField()


class PseudoLabelDice(s.Serializer):
    cases = s.IntegerField()
    mean = s.FloatField(allow_null=True)
    organs = s.DictField(child=OrganDice())


class Validation(s.Serializer):
    arch = s.CharField()
    model = s.CharField()
    parent = s.CharField(allow_null=True)
    cases = s.ListField(child=s.CharField())
    mean = s.FloatField(allow_null=True)
    parent_mean = s.FloatField(allow_null=True)
    dice = s.DictField(child=s.FloatField(allow_null=True))
    parent_dice = s.DictField(child=s.FloatField(allow_null=True))


class ErrorTags(s.Serializer):
    tags = s.ListField(child=s.CharField())
    organs = s.DictField(child=_counts())
    total = s.IntegerField()


class LabelBias(s.Serializer):
    sources = s.ListField(child=s.CharField())
    cases = s.IntegerField()
    mean = _matrix()
    organs = s.DictField(child=_matrix())
    organ_cases = _counts()


class VoxelShares(s.Serializer):
    total = s.IntegerField()
    labelled = s.IntegerField()
    changed_by_people = s.IntegerField()
    decided_by_ai = s.IntegerField()
    ai_share = s.FloatField(allow_null=True)
    people_share = s.FloatField(allow_null=True)
    people_share_of_all = s.FloatField(allow_null=True)
    cases = s.IntegerField()
    cases_revised = s.IntegerField()
    cases_confirmed = s.IntegerField()


class MetricsState(s.Serializer):
    computed = _when()
    key = s.CharField(allow_null=True)
    current_key = s.CharField()
    stale = s.BooleanField()


class RoundQuality(AttentionCurve):
    cases = None
    created = s.CharField(help_text="ISO 8601")
    finished = _when()
    organs = s.ListField(child=s.CharField())
    attention = AttentionSummary()
    tasks = _counts()
    pseudo_label_dice = PseudoLabelDice()
    validation = Validation(many=True)
    error_tags = ErrorTags()
    label_bias = LabelBias(allow_null=True)
    voxels = VoxelShares(allow_null=True)
    metrics = MetricsState()


class Qualities(s.Serializer):
    rounds = RoundQuality(many=True)


class RefreshAccepted(s.Serializer):
    round = s.IntegerField()
    job = s.CharField(help_text="the METRICS job's key")
    status = s.ChoiceField(choices=Job.Status.choices)


class JobRow(s.Serializer):
    id = s.IntegerField()
    key = s.CharField()
    kind = s.ChoiceField(choices=Job.Kind.choices)
    arch = s.CharField()
    case = s.CharField(allow_null=True)
    status = s.ChoiceField(choices=Job.Status.choices)
    progress = s.FloatField()
    message = s.CharField()
    error = s.CharField()
    attempts = s.IntegerField()
    started = _when()
    finished = _when()


class StepCount(s.Serializer):
    total = s.IntegerField()
    succeeded = s.IntegerField()


class RoundState(RoundRef):
    error = s.CharField()
    label_set = s.CharField()
    settings = s.JSONField()
    created = s.CharField(help_text="ISO 8601")
    finished = _when()
    steps = s.DictField(child=StepCount())


class RunningJob(s.Serializer):
    key = s.CharField()
    progress = s.FloatField()
    message = s.CharField()


class FailedJob(s.Serializer):
    key = s.CharField()
    error = s.CharField()


class Provenance(s.Serializer):
    """Where a member's weights come from: recorded at registration, read from a bundle, or Atlas's own."""

    source = s.CharField()
    licence = s.CharField()
    citation = s.CharField()


class RoundMember(s.Serializer):
    """selectors.members.round_members: one model of a round's ensemble."""

    name = s.CharField()
    kind = s.CharField(help_text="swin_unetr, nnunet, unet (Atlas's networks), nnunetv2, totalsegmentator, "
                                 "monai-bundle (registered), external (imported predictions)")
    source = s.CharField(help_text="trained (in this round), shipped (a shipped checkpoint as it is), start (a "
                                   "registered start as it is), carried (an earlier round's model), registered, "
                                   "imported")
    fine_tuned = s.BooleanField(help_text="trained or fine-tuned in this round")
    organs = s.ListField(child=s.CharField())
    provenance = Provenance()


class MemberRow(s.Serializer):
    """selectors.members.member_list: a registered model or imported predictions (never fine-tuned)."""

    name = s.CharField()
    kind = s.CharField()
    label_set = s.CharField()
    source = s.CharField(help_text="registered, imported or start (published weights an architecture starts from)")
    registered = s.BooleanField(help_text="joins every new round of its label set")
    fine_tuned = s.BooleanField()
    location = s.CharField(help_text="model folder, TotalSegmentator task or imported folder")
    organs = s.ListField(child=s.CharField())
    rounds = s.ListField(child=s.IntegerField())
    created = s.CharField(help_text="ISO 8601")
    provenance = Provenance()


class ClickValidation(s.Serializer):
    dice_0 = s.FloatField(allow_null=True, help_text="mean Dice of the starting labels, before any click")
    dice_1 = s.FloatField(allow_null=True, help_text="after 1 simulated click")
    dice_3 = s.FloatField(allow_null=True, help_text="after 3 simulated clicks")
    dice_5 = s.FloatField(allow_null=True, help_text="after 5 simulated clicks")
    cases = s.IntegerField(help_text="(case, organ) samples clicked on")
    validated_on = s.CharField(help_text="held-out cases, training cases (none held out) or held-out phantoms")


class ClickModel(s.Serializer):
    """selectors.interactive.click_model_row: an interactive engine, its version, licence and validation."""

    name = s.CharField()
    kind = s.CharField(help_text="atlas-click (Atlas's click model) or nninteractive (registered)")
    version = s.CharField()
    parent = s.CharField(allow_null=True)
    fine_tuned = s.BooleanField()
    licence = s.CharField(help_text="the weights' licence (nnInteractive's: CC BY-NC-SA 4.0, non-commercial use only)")
    source = s.CharField(help_text="where the weights come from")
    citation = s.CharField(allow_blank=True, help_text="what to cite when using them (empty: Atlas's own)")
    validation = ClickValidation()


class Members(s.Serializer):
    members = MemberRow(many=True)
    interactive = ClickModel(many=True, help_text="the workspace's interactive engines, the default first")


class RoundSummary(RoundRef):
    """selectors.rounds.round_summary: a round's state, jobs per kind and status, tasks, models."""

    label_set = s.CharField()
    settings = s.JSONField()
    error = s.CharField()
    models = s.ListField(child=s.CharField())
    members = RoundMember(many=True)
    click_model = ClickModel(allow_null=True, help_text="the click model this round trained (or kept)")
    jobs = s.DictField(child=_counts())
    running = RunningJob(many=True)
    failed = FailedJob(many=True)
    tasks = _counts()


class JobsBoard(s.Serializer):
    active = s.BooleanField()
    can_start = s.BooleanField()
    rounds = RoundState(many=True)
    round = RoundSummary(allow_null=True)
    running = JobRow(many=True)
    failed = JobRow(many=True)
    recent = JobRow(many=True)
    queued = s.IntegerField(required=False)


class LeadVerdicts(s.Serializer):
    lead = s.CharField()
    reviews = s.IntegerField()
    accepted = s.IntegerField()
    rejected = s.IntegerField()
    edited = s.IntegerField(help_text="edited and accepted")
    adjudicated = s.IntegerField(help_text="double reads adjudicated")
    median_seconds = s.FloatField(allow_null=True, help_text="time a review takes")
    mean_seconds = s.FloatField(allow_null=True)


class AnnotatorVerdicts(s.Serializer):
    annotator = s.CharField()
    reviewed = s.IntegerField()
    accepted = s.IntegerField()
    rejected = s.IntegerField()
    edited = s.IntegerField()
    adjudicated = s.IntegerField()
    accepted_share = s.FloatField(allow_null=True)


class OrganAgreement(s.Serializer):
    organ = s.CharField()
    pairs = s.IntegerField()
    dice = s.FloatField(help_text="mean inter-annotator Dice")
    nsd = s.FloatField(help_text="mean inter-annotator NSD (FLARE tolerance)")


class DoubleReadBoard(s.Serializer):
    share = s.FloatField(allow_null=True, help_text="the round's share of double reads")
    pairs = s.IntegerField()
    measured = s.IntegerField(help_text="pairs with both reads in")
    adjudicated = s.IntegerField()
    organs = OrganAgreement(many=True)


class ReviewBoard(s.Serializer):
    round = s.IntegerField(allow_null=True)
    waiting = s.IntegerField(help_text="revisions waiting for review")
    leads = LeadVerdicts(many=True)
    annotators = AnnotatorVerdicts(many=True)
    double_reads = DoubleReadBoard()


def render(serializer_class: type[s.Serializer], data) -> dict:
    """data (what a selector returned) as the serializer renders it: the documented shape, nothing else."""
    return serializer_class(data).data
