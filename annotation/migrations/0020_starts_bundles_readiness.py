from django.db import migrations, models


class Migration(migrations.Migration):
    """MONAI bundles as registered members; each round's per-organ readiness (issue 28)."""

    dependencies = [
        ('annotation', '0019_audit'),
    ]

    operations = [
        migrations.AlterField(
            model_name='modelversion',
            name='arch',
            field=models.CharField(choices=[('swin_unetr', 'Swin Unetr'), ('nnunet', 'Nnunet'), ('unet', 'Unet'), ('external', 'External'), ('nnunetv2', 'registered nnU-Net v2 model'), ('totalsegmentator', 'registered TotalSegmentator'), ('monai-bundle', 'registered MONAI bundle')], max_length=32),
        ),
        migrations.AddField(
            model_name='round',
            name='readiness',
            field=models.JSONField(blank=True, default=dict, help_text='per organ, whether the round\'s members are fit to rank it (annotation.services.readiness)'),
        ),
    ]
