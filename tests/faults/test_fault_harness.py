"""The fault harness itself: a world starts with one intact finished run, and a user mistake is one line."""


def test_world_has_one_intact_run(world, capsys):
    world.assert_intact()
    err = world.run(capsys, "--set", "stpes=3", code=2)
    assert "stpes" in err
    world.assert_intact()


def test_rerun_is_cached_and_leaves_the_run_intact(world, capsys):
    world.run(capsys)
    world.assert_intact()
