"""Campaigns: the fuzz loop of one worker (:mod:`.loop`), the driver of many
(:mod:`.driver`), a session of a campaign, new or resumed (:mod:`.sessions`), its folder
and event log (:mod:`.folder`), workers on a Dask cluster (:mod:`.cluster`), and the
property as a plain Hypothesis test for HypoFuzz (:mod:`.hypofuzz_target`).

May import: every layer below (core, versions, run, judge, stream, corpus, triage) and
:mod:`strategies`; never the report or the CLI.
"""
