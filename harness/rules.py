"""Stable ids for the rules of ../shared/NOTES.md (and the version-dependent places, `V-*`): which tests check
each rule and which mutants of qemu/mutants/ break it. `python -m harness trace` turns this table into
docs/TRACEABILITY.md, checking that every test and mutant named here exists. A test is named
`area/test_file::test_function` (under suite/); a mutant by its file name without `.patch`.
"""

from __future__ import annotations

from dataclasses import dataclass

ECLONE = ("eclone",)
CLONE3 = ("clone3",)
ROOT = ("clone_with_pids", "clone2")
SEEDS = ("eclone", "clone_with_pids", "clone2")
ALL = ("eclone", "clone_with_pids", "clone2", "clone3")
NS_LAST_PID = ("ns_last_pid",)
IPC = ("msg_next_id", "sem_next_id", "shm_next_id")
NEXT_ID = ("next_id",)
NEXT_ID_IPC = ("next_id_msg", "next_id_sem", "next_id_shm")
ID_ALL = NEXT_ID + NEXT_ID_IPC + NS_LAST_PID + IPC  # the write-then-create files (suite/ids, the `id_profile` fixture)


@dataclass(frozen=True)
class Rule:
    id: str
    where: str  # the NOTES.md section (or seed) that states it
    text: str
    profiles: tuple[str, ...]
    tests: tuple[str, ...] = ()
    mutants: tuple[str, ...] = ()
    note: str = ""  # why a gap is a gap, or how a V-* place is decided


def _r(id: str, where: str, text: str, profiles: tuple[str, ...], tests: str = "", mutants: str = "",
       note: str = "") -> Rule:
    return Rule(id, where, text, profiles, tuple(tests.split()), tuple(mutants.split()), note)


A, S, R, ID = "abi/", "semantics/", "races/", "ids/"

RULES: tuple[Rule, ...] = (
    # --- eclone as the seeds define it ---
    _r("E1-ARGS-SIZE", "eclone step 1",
       "args_size must be 56 (smaller, larger, negative: EINVAL); unreadable args: EFAULT", ECLONE,
       f"{A}test_args_size::test_every_args_size_from_0_to_a_page_and_beyond "
       f"{A}test_args_size::test_bytes_past_args_size_are_never_read "
       f"{A}test_memory_faults::test_unreadable_args_is_efault_and_creates_nothing", "eclone-args-size-larger"),
    _r("E2-RESERVED", "eclone step 2", "reserved0, reserved1 or clone_flags_high nonzero: EINVAL", ECLONE,
       f"{A}test_reserved_fields::test_every_bit_and_every_byte_of_reserved0_and_reserved1_alone_is_einval "
       f"{A}test_reserved_fields::test_any_nonzero_reserved_content_is_rejected_and_all_zero_is_accepted "
       f"{A}test_layout_behaviour::test_every_bit_of_clone_flags_high_alone_is_einval",
       "eclone-reserved0-ignored eclone-reserved1-ignored eclone-high-flags-ignored"),
    _r("E3-FLAGS", "eclone step 3 + settled", "flags are exactly clone(2)'s (no clone3-only rejection); "
       "CLONE_PIDFD|CLONE_PARENT_SETTID: EINVAL", ECLONE,
       f"{A}test_eclone_rules::test_flag_combinations_clone_refuses_are_einval_even_with_unreadable_pids "
       f"{A}test_eclone_rules::test_what_only_clone3_refuses_is_accepted "
       f"{A}test_eclone_rules::test_exit_signal_above_64_is_kept_as_the_childs_exit_signal",
       "eclone-exit-signal-clone3-rule eclone-pidfd-settid-allowed fork-flag-checks-only-in-eclone"),
    _r("E3-PIDFD", "eclone settled", "CLONE_PIDFD returns the pidfd through parent_tid_ptr", SEEDS,
       f"{A}test_layout_behaviour::test_pidfd_lands_in_the_pidfd_field "
       f"{A}test_root_anchored_rules::test_clone2_pidfd_goes_through_a_parent_tid_below_4gib",
       "eclone-pidfd-at-child-tid clone2-pidfd-at-child-tid clone-with-pids-pidfd-at-child-tid"),
    _r("E3-SETTLS", "eclone settled; clone2", "no tls argument: CLONE_SETTLS sets tls 0", ("eclone", "clone2"),
       f"{A}test_settls::test_clone_settls_gives_the_tls_argument_or_0_where_the_call_has_none "
       f"{A}test_settls::test_clone_settls_with_pids_still_gives_fs_base_0",
       "eclone-settls-from-child-tid clone2-settls-from-child-tid"),
    _r("E3-FLAGS-FIRST", "eclone settled", "flag checks before the pid vector is read and before privilege", ECLONE,
       f"{A}test_eclone_rules::test_flag_combinations_clone_refuses_are_einval_even_with_unreadable_pids "
       f"{A}test_precedence::test_eclone_check_order", "eclone-flags-after-pids"),
    _r("E4-STACK", "eclone step 4", "child_stack_size != 0: EINVAL on x86; child_stack_base is the stack pointer",
       ECLONE, f"{A}test_eclone_rules::test_nonzero_child_stack_size_is_einval_on_x86 "
       f"{A}test_layout_behaviour::test_stack_fields_give_the_childs_stack_pointer "
       f"{A}test_layout_behaviour::test_no_stack_means_the_child_runs_on_the_callers_stack_pointer",
       "eclone-stack-size-ignored"),
    _r("E5-COUNT", "eclone step 5", "nr_pids 0: plain clone; > active level + 1 (u32, 2^31 and up too): EINVAL; "
       "unreadable pids: EFAULT", ECLONE,
       f"{A}test_eclone_rules::test_zero_nr_pids_is_a_plain_clone_and_ignores_the_pids_pointer "
       f"{A}test_eclone_rules::test_nr_pids_above_level_plus_one_is_einval_including_2_to_the_31_and_up "
       f"{A}test_eclone_rules::test_nr_pids_of_2_to_the_31_at_level_0_is_einval "
       f"{S}test_depth::test_vector_longer_than_kernel_level_plus_one_is_einval "
       f"{A}test_memory_faults::test_unreadable_pid_vector_is_efault_and_creates_nothing",
       "eclone-depth-off-by-one eclone-nr-pids-signed eclone-pids-efault-ignored"),
    _r("E5-COUNT-ACTIVE", "eclone settled", "the count bound uses the active level: 33 pids at level 32", ECLONE,
       f"{S}test_depth::test_eclone_caller_at_level_32_may_pass_33_pids "
       f"{S}test_depth::test_eclone_34_pids_at_level_32_are_einval", "eclone-depth-off-by-one"),
    _r("E6-PRIVILEGE", "eclone step 6 + settled", "EPERM without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over each "
       "target level's owner, after the count, before any value; an explicit 0 needs none", SEEDS,
       f"{S}test_privilege::test_without_the_capability_choosing_a_pid_is_eperm "
       f"{S}test_privilege::test_either_capability_alone_is_enough "
       f"{S}test_privilege::test_root_of_a_user_namespace_chooses_pids_in_its_own_pid_namespace "
       f"{S}test_privilege::test_root_of_a_user_namespace_cannot_reach_an_ancestor_level_it_does_not_own "
       f"{S}test_privilege::test_eclone_new_namespace_does_not_extend_privilege_to_ancestor_levels "
       f"{S}test_privilege::test_eclone_zero_entries_need_no_privilege "
       f"{S}test_check_order::test_too_long_vector_is_einval_even_without_privilege "
       f"{S}test_check_order::test_eclone_checks_privilege_on_every_level_before_any_value "
       f"{A}test_root_anchored_rules::test_count_comes_before_privilege",
       "eclone-no-cap-check eclone-cap-before-count eclone-cap-init-userns eclone-cap-after-values "
       "eclone-zero-needs-cap eclone-cap-walk-from-child-ns"),
    _r("E7-VALUES", "eclone step 7", "0: the kernel picks; negative or >= pid_max: EINVAL; in use: EBUSY", SEEDS,
       f"{S}test_pid_ranges::test_pid_at_or_above_pid_max_is_einval {S}test_pid_ranges::test_negative_pid_is_einval "
       f"{S}test_pid_ranges::test_pid_max_minus_one_is_accepted "
       f"{S}test_pid_ranges::test_busy_pid_is_refused_with_the_profiles_errno_and_no_child "
       f"{S}test_partial_vectors::test_zero_lets_the_kernel_pick_at_that_level_only "
       f"{A}test_eclone_rules::test_zero_entry_lets_the_kernel_pick_at_that_level",
       "eclone-pid-max-inclusive eclone-busy-wrong-errno eclone-busy-takes-next eclone-zero-not-auto"),
    _r("E7-RESERVED-PIDS", "eclone step 7 + settled", "below 300: EINVAL once that level's cursor passed 300", ECLONE,
       f"{A}test_eclone_rules::test_pid_below_300_is_einval_once_the_namespace_allocated_past_300 "
       f"{A}test_eclone_rules::test_pid_below_300_is_allowed_in_a_namespace_still_below_300 "
       f"{S}test_pid_ranges::test_eclone_reserved_pids_depend_on_the_namespaces_cursor "
       f"{S}test_pid_ranges::test_eclone_reserved_pids_are_judged_by_each_levels_own_cursor",
       "eclone-reserved-pids-rule-dropped eclone-reserved-pids-wrong-cursor eclone-auto-pick-wraps-below-300"),
    _r("E7-LEVEL-ORDER", "eclone settled", "levels innermost first; per level range, RESERVED_PIDS, busy", ECLONE,
       f"{S}test_check_order::test_inner_level_error_wins_over_outer_busy "
       f"{S}test_check_order::test_inner_busy_wins_over_outer_range "
       f"{S}test_check_order::test_eclone_reserved_rule_comes_before_busy {A}test_precedence::test_eclone_check_order",
       "eclone-values-checked-before-the-levels"),
    _r("E7-CURSOR", "eclone settled; clone3", "an explicitly chosen pid does not move the cursor", ALL,
       f"{S}test_partial_vectors::test_explicit_pid_does_not_move_the_cursor "
       f"{S}test_partial_vectors::test_explicit_pids_at_every_level_do_not_move_the_cursor",
       "eclone-explicit-moves-cursor clone3-explicit-moves-cursor"),
    _r("E7-PID1-BUSY", "eclone settled", "pid 1 where an init lives: the busy errno", ALL,
       f"{S}test_pid_ranges::test_eclone_pid_1_where_an_init_lives_is_ebusy "
       f"{S}test_pid_ranges::test_clone3_pid_1_where_an_init_lives_is_eexist",
       "eclone-busy-wrong-errno clone3-busy-wrong-errno"),
    _r("E7-THREAD", "eclone settled", "CLONE_THREAD with pids is allowed (the pids name the thread)", SEEDS,
       f"{S}test_pid_selection::test_new_thread_gets_the_chosen_pid",
       "eclone-thread-pids-rejected root-anchored-thread-pids-rejected"),
    _r("E8-ORDER", "eclone step 8", "pids[0] outermost; a short vector applies from the caller's level outwards",
       ECLONE, f"{S}test_pid_selection::test_full_vector_sets_every_level_outermost_first "
       f"{S}test_pid_selection::test_caller_in_the_middle_of_a_chain_sets_its_level_and_the_ones_above "
       f"{S}test_partial_vectors::test_one_entry_names_the_callers_own_level "
       f"{S}test_partial_vectors::test_short_vector_sets_the_youngest_levels "
       f"{S}test_partial_vectors::test_levels_left_out_get_the_next_automatic_pid",
       "eclone-reversed-order eclone-short-vector-from-root"),
    _r("E8-CHANGED-NS", "eclone settled", "after unshare(CLONE_NEWPID)/setns the vector starts at the active level; "
       "deeper levels are the kernel's (a refused call leaves a new namespace its pid 1)", ALL,
       f"{S}test_changed_namespaces::test_after_unshare_the_vector_names_the_callers_levels_and_the_new_one_is_pid_1 "
       f"{S}test_changed_namespaces::test_after_setns_the_vector_names_the_callers_levels "
       f"{S}test_changed_namespaces::test_after_unshare_a_refused_call_leaves_the_new_namespace_its_pid_1 "
       f"{S}test_state_machine::test_chains_stay_in_step_with_the_model",
       "eclone-active-ns-from-nsproxy pidns-first-failure-keeps-cursor"),
    _r("E9-NEWPID", "eclone step 9", "CLONE_NEWPID: the child is pid 1 there; pids cover the caller's levels", SEEDS,
       f"{S}test_new_namespace::test_eclone_new_namespace_child_gets_pid_1_automatically "
       f"{S}test_new_namespace::test_eclone_cannot_name_the_new_namespace "
       f"{S}test_new_namespace::test_new_namespace_without_a_vector_starts_at_pid_1",
       "eclone-newpid-vector-shifted eclone-cap-walk-from-child-ns"),
    _r("E10-ATOMIC", "eclone step 10; clone3; seed 001", "a refused call creates nothing and keeps no pid at any level "
       "(nor a namespace); a concurrent fork that wins a pid makes the call fail", ALL,
       f"{S}test_atomicity::test_refused_vector_frees_the_inner_levels_it_had_allocated "
       f"{S}test_atomicity::test_out_of_range_outer_pid_frees_the_inner_ones "
       f"{S}test_atomicity::test_kernel_picked_inner_pid_is_freed_when_an_outer_level_fails "
       f"{S}test_atomicity::test_refused_call_leaves_the_chains_tasks_unchanged "
       f"{S}test_atomicity::test_refused_calls_with_a_new_namespace_free_that_namespace "
       f"{R}test_one_winner::test_one_racer_gets_a_free_pid_and_the_others_are_busy "
       f"{R}test_vectors::test_vectors_colliding_at_some_levels_are_all_or_nothing_and_leave_nothing "
       f"{R}test_exit_and_fork::test_ordinary_fork_and_a_call_for_the_same_pid_never_share_it",
       "eclone-leak-partial clone3-leak-partial root-anchored-leak-partial pid-unwind-skips-innermost "
       "pid-ns-ref-leak-on-refusal eclone-check-then-alloc"),
    _r("E10-SUCCESS-LEAK", "eclone step 10 (success side)", "a child that was created and exited leaves nothing: "
       "pids, namespaces, ucounts, held processes", ALL,
       f"{S}test_success_leaks::test_pids_of_a_child_that_exited_are_free_again "
       f"{S}test_success_leaks::test_held_children_are_gone_after_the_program "
       f"{S}test_success_leaks::test_successful_calls_with_a_new_namespace_free_that_namespace "
       f"{S}test_pid_selection::test_reported_child_frees_its_pids_on_exit", "pid-ns-ref-leak-on-success"),
    _r("E11-RETURN", "eclone step 11", "returns the child's pid in the caller's active namespace", ALL,
       f"{S}test_new_namespace::test_eclone_new_namespace_child_gets_pid_1_automatically "
       f"{S}test_changed_namespaces::test_after_unshare_the_vector_names_the_callers_levels_and_the_new_one_is_pid_1",
       "eclone-newpid-vector-shifted clone3-returns-the-innermost-pid"),
    _r("E-LAYOUT", "eclone struct (seed 003); clone2; clone_with_pids", "struct offsets, sizes, sizeof; i386 = x86_64",
       SEEDS, f"{A}test_layout_static::test_uapi_header_matches_the_spec_table "
       f"{A}test_layout_static::test_spec_table_is_the_same_for_i386_and_x86_64_without_padding "
       f"{A}test_layout_behaviour::test_count_field_says_how_many_pids_are_read "
       f"{A}test_layout_behaviour::test_child_settid_writes_the_tid_at_child_tid_ptr_only "
       f"{A}test_layout_behaviour::test_parent_settid_writes_the_tid_at_parent_tid_ptr_only "
       f"{A}test_root_anchored_rules::test_clone2_pidfd_goes_through_a_parent_tid_below_4gib",
       "eclone-uapi-layout-swapped clone-with-pids-child-tid-truncated clone2-uapi-tids-swapped"),
    _r("DYING-NS", "Newer kernels (b26ebfe12f34); 6.1 alloc_pid", "a namespace whose init died takes no process: "
       "ENOMEM, also with set_tid/pids", ALL,
       f"{S}test_changed_namespaces::test_no_process_in_an_unshared_namespace_whose_init_exited "
       f"{S}test_changed_namespaces::test_no_process_in_a_joined_namespace_whose_init_was_killed "
       f"{R}test_teardown::test_clone_into_a_namespace_whose_init_is_killed_succeeds_or_fails_with_enomem",
       "pid-dying-ns-errno-regression"),
    # --- clone3 + set_tid ---
    _r("C3-SIZE", "clone3", "size > PAGE_SIZE: E2BIG; < 64: EINVAL; nonzero byte past 88: E2BIG", CLONE3,
       f"{A}test_args_size::test_every_args_size_from_0_to_a_page_and_beyond "
       f"{A}test_args_size::test_a_nonzero_byte_anywhere_in_a_page_sized_tail_is_e2big", "clone3-tail-not-checked"),
    _r("C3-SET-TID", "clone3", "set_tid_size > 32, pointer/size disagreement, an entry < 1: EINVAL", CLONE3,
       f"{A}test_clone3_rules::test_set_tid_size_above_max_pid_ns_level_is_einval "
       f"{A}test_clone3_rules::test_set_tid_pointer_and_size_must_agree "
       f"{A}test_clone3_rules::test_set_tid_entry_zero_is_einval "
       f"{S}test_depth::test_clone3_33_entries_are_einval_even_at_level_32",
       "clone3-set-tid-max-off-by-one clone3-set-tid-size-unchecked"),
    _r("C3-FLAGS", "clone3", "exit_signal, CLONE_INTO_CGROUP, unknown flags, CLONE_DETACHED, SIGHAND|CLEAR_SIGHAND, "
       "THREAD/PARENT with exit_signal, stack pairing: EINVAL", CLONE3,
       f"{A}test_clone3_rules::test_exit_signal_with_high_bits_or_beyond_sigrtmax_is_einval "
       f"{A}test_clone3_rules::test_into_cgroup_needs_a_ver2_struct_and_a_cgroup_fd_up_to_int_max "
       f"{A}test_clone3_rules::test_every_unknown_flag_bit_alone_is_einval "
       f"{A}test_clone3_rules::test_clone_detached_and_csignal_bits_in_flags_are_einval "
       f"{A}test_clone3_rules::test_sighand_with_clear_sighand_is_einval "
       f"{A}test_clone3_rules::test_thread_with_an_exit_signal_is_einval "
       f"{A}test_clone3_rules::test_stack_and_stack_size_must_come_together_inside_user_space "
       f"{A}test_clone3_rules::test_flag_combinations_copy_process_refuses_are_einval_with_or_without_set_tid",
       "clone3-exit-signal-high-bits clone3-into-cgroup-unchecked clone3-detached-accepted "
       "clone3-sighand-clear-sighand-accepted clone3-thread-exit-signal-accepted clone3-stack-size-unchecked "
       "fork-flag-checks-only-in-eclone"),
    _r("C3-FIRST-PID", "clone3", "tid != 1 in a namespace with no init: EINVAL", CLONE3,
       f"{S}test_new_namespace::test_clone3_new_namespace_with_pid_1_first "
       f"{S}test_new_namespace::test_clone3_new_namespace_first_pid_other_than_1_is_einval",
       "clone3-first-pid-not-1"),
    _r("C3-PRIVILEGE", "clone3", "EPERM without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over the level's owner", CLONE3,
       f"{S}test_privilege::test_without_the_capability_choosing_a_pid_is_eperm "
       f"{S}test_privilege::test_root_of_a_user_namespace_chooses_pids_in_its_own_pid_namespace",
       "clone3-no-cap-check clone3-cap-init-userns"),
    _r("C3-VALUES", "clone3", "tid >= pid_max: EINVAL; in use: EEXIST", CLONE3,
       f"{S}test_pid_ranges::test_pid_at_or_above_pid_max_is_einval "
       f"{S}test_pid_ranges::test_busy_pid_is_refused_with_the_profiles_errno_and_no_child "
       f"{A}test_clone3_rules::test_a_busy_set_tid_is_eexist_and_a_free_one_is_given",
       "clone3-busy-wrong-errno clone3-pid-max-inclusive"),
    # --- clone_with_pids (seed 001) and clone2 (seed 002) ---
    _r("R-ANCHOR", "clone_with_pids/clone2 vector order", "pids[0] is the initial namespace: k entries name levels "
       "0..k-1", ROOT, f"{A}test_layout_behaviour::test_count_field_says_how_many_pids_are_read "
       f"{S}test_oracle_agreement::test_kernel_agrees_with_the_model",
       "clone-with-pids-anchored-at-caller clone2-anchored-at-caller"),
    _r("R-COUNT", "clone_with_pids/clone2 count", "count > active level + 1 (2^31 and up too): EINVAL, before "
       "privilege and before the entries are read", ROOT,
       f"{A}test_root_anchored_rules::test_count_above_level_plus_one_is_einval_including_2_to_the_31_and_up "
       f"{A}test_root_anchored_rules::test_count_2_to_the_31_at_level_0_is_einval "
       f"{A}test_root_anchored_rules::test_count_comes_before_privilege "
       f"{A}test_root_anchored_rules::test_zero_count_is_a_plain_clone_and_never_reads_the_vector",
       "root-anchored-count-off-by-one clone2-nr-pids-signed"),
    _r("R-NO-RESERVED-PIDS", "clone_with_pids/clone2 values", "no RESERVED_PIDS rule: any free pid from 1 up", ROOT,
       f"{A}test_root_anchored_rules::test_pid_below_300_is_allowed_after_the_namespace_allocated_past_300 "
       f"{A}test_root_anchored_rules::test_pid_below_300_at_level_0_after_the_cursor_passed_300 "
       f"{S}test_pid_ranges::test_accepts_pids_below_300_whatever_the_cursor_without_a_reserved_pids_rule",
       "clone-with-pids-reserved-pids-rule clone2-reserved-pids-rule"),
    _r("R-FLAGS-FIRST", "clone_with_pids/clone2 settled", "flags and count before the pid set is read", ROOT,
       f"{A}test_root_anchored_rules::test_clone_with_pids_count_and_flags_come_before_reading_the_pid_set "
       f"{A}test_root_anchored_rules::test_clone2_count_and_flags_come_before_reading_the_pids",
       "clone-with-pids-flags-after-pid-set clone2-flags-after-pids"),
    _r("R-HIGH-FLAGS", "clone_with_pids/clone2", "clone2: any of bits 32-63: EINVAL; clone_with_pids ignores them",
       ROOT, f"{A}test_root_anchored_rules::test_clone2_every_high_flag_bit_alone_is_einval "
       f"{A}test_root_anchored_rules::test_clone_with_pids_ignores_flag_bits_32_to_63_as_clone_does",
       "clone2-high-flags-ignored clone-with-pids-high-flags-rejected"),
    _r("R-RESERVED", "clone2", "reserved1 or reserved2 nonzero: EINVAL", ("clone2",),
       f"{A}test_reserved_fields::test_every_bit_and_every_byte_of_reserved0_and_reserved1_alone_is_einval "
       f"{A}test_reserved_fields::test_any_nonzero_reserved_content_is_rejected_and_all_zero_is_accepted",
       "clone2-reserved2-ignored"),
    _r("R-TID32", "clone2 Rule", "parent_tid/child_tid are 32-bit user addresses, zero-extended", ("clone2",),
       f"{A}test_root_anchored_rules::test_clone2_tid_addresses_below_4gib_get_the_tids "
       f"{A}test_root_anchored_rules::test_clone2_tid_fields_hold_32_bits_so_an_arena_address_is_cut_to_its_low_half",
       "clone2-tid-sign-extended"),
    _r("R-TLS", "clone_with_pids Rule", "the fifth argument is clone(2)'s tls (CLONE_SETTLS)", ("clone_with_pids",),
       f"{A}test_settls::test_clone_settls_gives_the_tls_argument_or_0_where_the_call_has_none",
       "clone-with-pids-tls-dropped"),
    # --- next_id (seed 004): the reference kernel's patches 0011 (processes) and 0012 (SysV IPC) ---
    _r("N-NEXT-ID-LEVELS", "next_id (seed 004)", "the next fork/clone takes the ids, X0 in the child's own namespace "
       "(innermost), X1 in its parent; clone3's rules, a busy pid -> EBUSY, atomic", NEXT_ID,
       f"{ID}test_next_id::test_each_level_gets_its_chosen_pid_x0_innermost "
       f"{ID}test_next_id::test_a_single_id_names_the_childs_own_namespace "
       f"{ID}test_next_id::test_a_busy_outer_pid_is_ebusy_and_the_inner_one_is_given_back "
       f"{ID}test_next_id::test_with_clone_newpid_x0_is_the_new_namespaces_pid_1 "
       f"{ID}test_next_id::test_the_creation_follows_clone3s_rules "
       f"{ID}test_chosen_id::test_the_next_object_gets_the_chosen_id "
       f"{ID}test_chosen_id::test_a_busy_id_gives_what_the_spec_says",
       "next-id-reversed-order next-id-busy-takes-next"),
    _r("N-NEXT-ID-ONE-SHOT", "next_id (seed 004)", "one shot: the first creation attempt consumes the ids whatever its "
       "outcome; a creation naming its own pids (clone3 set_tid, eclone, ...) clears them", NEXT_ID,
       f"{ID}test_next_id::test_the_ids_are_used_once_on_success "
       f"{ID}test_next_id::test_a_failed_creation_consumes_the_ids "
       f"{ID}test_next_id::test_the_file_reads_empty_after_the_creation "
       f"{ID}test_next_id::test_a_creation_naming_its_own_pids_clears_them",
       "next-id-not-one-shot"),
    _r("N-NEXT-ID-EXEC", "next_id (seed 004) settled", "pending ids are never inherited, survive execve() and are "
       "freed at exit", NEXT_ID, f"{ID}test_next_id::test_pending_ids_survive_execve "
       f"{ID}test_next_id::test_the_ids_are_used_once_on_success", "next-id-cleared-by-execve"),
    _r("N-NEXT-ID-WRITER", "next_id (seed 004)", "only the thread itself may write its file (EPERM, even as root)",
       NEXT_ID, f"{ID}test_next_id::test_another_processes_file_is_eperm_even_for_root "
       f"{ID}test_next_id::test_a_sibling_threads_file_is_eperm_before_any_syntax_check "
       f"{ID}test_next_id::test_the_file_is_per_thread_only",
       "next-id-any-thread-may-write next-id-thread-group-may-write next-id-size-before-permission"),
    _r("N-NEXT-ID-SYNTAX", "next_id (seed 004)", "LONG<n> X0 .. X<n-1> / LONG X, n 1..33, plain decimal up to "
       "LONG_MAX, "
       "one blank between fields, one optional newline, <= 1024 bytes, else EINVAL and nothing stored; reads back "
       "normalised", NEXT_ID,
       f"{ID}test_next_id::test_near_miss_writes_are_einval_and_store_nothing "
       f"{ID}test_next_id::test_a_write_over_1024_bytes_is_einval "
       f"{ID}test_next_id::test_the_file_reads_back_normalised "
       f"{ID}test_next_id::test_a_later_write_replaces_the_pending_ids "
       f"{ID}test_chosen_id::test_values_out_of_range_are_einval_and_change_nothing",
       "next-id-syntax-loose"),
    _r("N-NEXT-ID-IPC", "next_id (seed 004)", "SysV IPC: one pending id makes the next msgget/semget/shmget that "
       "creates an object take exactly that id (index in use: EBUSY; n > 1 or index out of range: EINVAL); consumed "
       "by a call that reaches the creation, kept by one that creates nothing; the sysctl is neither used nor reset; "
       "the thread's next process or object takes it, whichever comes first", NEXT_ID_IPC,
       f"{ID}test_chosen_id::test_the_next_object_gets_the_chosen_id "
       f"{ID}test_chosen_id::test_a_busy_id_gives_what_the_spec_says "
       f"{ID}test_next_id::test_an_ipc_creation_refuses_what_it_cannot_give_with_einval "
       f"{ID}test_next_id::test_an_ipc_call_that_creates_nothing_keeps_the_id "
       f"{ID}test_next_id::test_a_shmget_refused_at_the_creation_consumes_the_id "
       f"{ID}test_next_id::test_next_id_wins_over_the_sysctl_and_leaves_it_set "
       f"{ID}test_next_id::test_whichever_object_comes_first_takes_the_id",
       "next-id-ipc-busy-takes-next next-id-process-leaves-the-id-for-ipc"),
    # --- ns_last_pid and {msg,sem,shm}_next_id (mainline; NOTES.md "next_id and its mainline descendants") ---
    _r("I-NS-LAST-PID", "ns_last_pid", "writing N sets the writer's active namespace's cursor (N in [0, pid_max], "
       "else EINVAL); the next process gets N+1 if free; CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over the owner",
       NS_LAST_PID, f"{ID}test_chosen_id::test_the_next_object_gets_the_chosen_id "
       f"{ID}test_chosen_id::test_values_out_of_range_are_einval_and_change_nothing "
       f"{ID}test_chosen_id::test_the_write_moves_only_the_writers_pid_namespace "
       f"{ID}test_chosen_id::test_a_cursor_at_pid_max_wraps_to_the_reserved_pids "
       f"{ID}test_privilege::test_the_root_of_the_owning_user_namespace_chooses_in_a_nested_namespace "
       f"{ID}test_privilege::test_without_the_capability_the_write_is_refused_and_changes_nothing",
       "ns-last-pid-cap-init-userns ns-last-pid-cursor-off-by-one ns-last-pid-negative-accepted "
       "ns-last-pid-no-cap-check ns-last-pid-parent-namespace"),
    _r("I-NS-LAST-PID-RACE", "ns_last_pid", "no atomicity: a fork between the write and the creation takes the pid "
       "(shown, not reported as a bug)", NS_LAST_PID,
       f"{ID}test_race::test_a_fork_between_the_write_and_the_creation_takes_the_chosen_pid",
       note="a property of the interface, not a rule a kernel can break"),
    _r("I-IPC-NEXT-ID", "{msg,sem,shm}_next_id", "the next object gets sequence id / 32768 and the lowest free index "
       ">= id % 32768 (no error when taken); reset to -1 by that creation; writable only with the capability over "
       "the IPC namespace's owner", IPC, f"{ID}test_chosen_id::test_the_next_object_gets_the_chosen_id "
       f"{ID}test_chosen_id::test_after_the_creation_the_file_reads_as_the_spec_says "
       f"{ID}test_chosen_id::test_a_busy_id_gives_what_the_spec_says "
       f"{ID}test_privilege::test_without_the_capability_the_write_is_refused_and_changes_nothing "
       f"{ID}test_privilege::test_root_of_a_user_namespace_cannot_write_for_a_namespace_its_ancestor_owns",
       "ipc-next-id-busy-index-fails ipc-next-id-cap-current-userns ipc-next-id-no-cap-check "
       "ipc-next-id-not-reset ipc-next-id-sequence-ignored"),
    # --- places where correct kernels differ (NOTES.md "Newer kernels"): probed, not assumed ---
    _r("V-PIDFD-THREAD", "Newer kernels (6.9)", "eclone's CLONE_PIDFD|CLONE_THREAD follows this kernel's clone(2)",
       ECLONE, f"{A}test_eclone_rules::test_pidfd_with_thread_is_decided_as_clone_2_decides_it_on_this_kernel",
       note="suite/kernel_probes.py clone_accepts_pidfd_thread"),
    _r("V-CLONE3-TWO-PASS", "Newer kernels (two-pass alloc_pid)", "clone3's errno precedence across levels", CLONE3,
       f"{S}test_check_order::test_inner_busy_wins_over_outer_range "
       f"{S}test_check_order::test_privilege_comes_before_busy",
       note="suite/kernel_probes.py clone3_privilege_pass_first (spec table: level_order_from_kernel)"),
    _r("V-CURSOR-ON-FAILURE", "not in NOTES.md", "whether kernel picks before a refusal move the cursor", ALL,
       f"{S}test_oracle_agreement::test_kernel_agrees_with_the_model "
       f"{S}test_state_machine::test_chains_stay_in_step_with_the_model",
       note="harness/oracle/runner.py accepts either (6.1 moves it)"),
    _r("V-PID-MAX-PER-NS", "Newer kernels (6.14)", "pid_max per pid namespace: each level checks its own", ALL,
       f"{S}test_pid_ranges::test_each_level_checks_its_own_pid_max",
       note="the agent reads pid_max at every level (chain pid_maxes)"),
)


def by_id() -> dict[str, Rule]:
    return {r.id: r for r in RULES}
