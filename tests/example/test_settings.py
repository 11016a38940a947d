"""The example keeps its files in its home and seeds the landing folder once."""

from dagster_monitoring.example.settings import EXTRACTS, PARTNER_FILE, ExampleSettings


def test_landing_folder_is_seeded_once_and_a_missing_file_stays_missing(tmp_path):
    settings = ExampleSettings(tmp_path / "example").prepare()
    assert sorted(p.name for p in settings.landing_dir.iterdir()) == sorted([*EXTRACTS, PARTNER_FILE])
    (settings.landing_dir / PARTNER_FILE).unlink()
    settings.prepare()  # a code reload (dagster dev) must not "fix" a bad morning
    assert not (settings.landing_dir / PARTNER_FILE).exists()
    assert settings.warehouse.parent == settings.dbt_target.parent == settings.home
