/** The config form's values, the checks the API's schema makes (so a mistake is caught
 * before a round trip), and the change that holds only what the user edited. */
import type { ConfigChange, ProjectConfig, Schemas } from "../../api/client";

export type Strategy = Schemas["Strategy"];
export type Landing = Schemas["Landing"];

export type Sizing = "fixed" | "auto";

export interface ConfigForm {
  batchSizing: Sizing;
  batchSize: string;
  batchSizeMax: string;
  strategy: Strategy;
  trainDepth: string;
  landing: Landing;
  skipTargetPipeline: boolean;
  ciTimeout: string;
  flakyRetries: string;
  bisectWays: string;
  targetBranches: string;
  paused: boolean;
}

export type Field = keyof ConfigForm;
export type FieldErrors = Partial<Record<Field, string>>;

// The same rule as the API's BranchName: no whitespace and none of ~ ^ : ? * [ \.
const BRANCH = /^[^\s~^:?*[\\]+$/;
const MAX_BRANCHES = 20;

export function formOf(config: ProjectConfig): ConfigForm {
  return {
    batchSizing: config.batch_size === "auto" ? "auto" : "fixed",
    batchSize: String(typeof config.batch_size === "number" ? config.batch_size : 5),
    batchSizeMax: String(config.batch_size_max ?? 8),
    strategy: config.strategy ?? "batch",
    trainDepth: String(config.train_depth ?? 2),
    landing: config.landing ?? "push",
    skipTargetPipeline: config.skip_target_pipeline ?? false,
    ciTimeout: String(config.ci_timeout_minutes ?? 60),
    flakyRetries: String(config.flaky_retries ?? 0),
    bisectWays: String(config.bisect_ways ?? 3),
    targetBranches: (config.target_branches ?? []).join("\n"),
    paused: config.paused ?? false,
  };
}

export function parseBranches(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((branch) => branch.trim())
    .filter((branch) => branch !== "");
}

function whole(text: string, label: string, min: number, max: number): number | string {
  const trimmed = text.trim();
  if (trimmed === "") return `${label} is required.`;
  if (!/^-?\d+$/.test(trimmed)) return `${label} must be a whole number.`;
  const value = Number(trimmed);
  if (value < min || value > max) return `${label} must be between ${min} and ${max}.`;
  return value;
}

export interface Checked {
  errors: FieldErrors;
  /** Only the fields whose value differs from the saved config. */
  change: ConfigChange;
}

export function check(form: ConfigForm, saved: ProjectConfig): Checked {
  const errors: FieldErrors = {};
  const change: ConfigChange = {};

  if (form.batchSizing === "auto") {
    if (saved.batch_size !== "auto") change.batch_size = "auto";
  } else {
    const batchSize = whole(form.batchSize, "Batch size", 1, 50);
    if (typeof batchSize === "string") errors.batchSize = batchSize;
    else if (batchSize !== (saved.batch_size ?? 5)) change.batch_size = batchSize;
  }

  const batchSizeMax = whole(form.batchSizeMax, "Largest automatic batch", 2, 50);
  if (typeof batchSizeMax === "string") errors.batchSizeMax = batchSizeMax;
  else if (batchSizeMax !== (saved.batch_size_max ?? 8)) change.batch_size_max = batchSizeMax;

  const ciTimeout = whole(form.ciTimeout, "CI timeout", 1, 1440);
  if (typeof ciTimeout === "string") errors.ciTimeout = ciTimeout;
  else if (ciTimeout !== (saved.ci_timeout_minutes ?? 60)) change.ci_timeout_minutes = ciTimeout;

  const flakyRetries = whole(form.flakyRetries, "Flaky retries", 0, 3);
  if (typeof flakyRetries === "string") errors.flakyRetries = flakyRetries;
  else if (flakyRetries !== (saved.flaky_retries ?? 0)) change.flaky_retries = flakyRetries;

  const bisectWays = whole(form.bisectWays, "Bisection ways", 2, 8);
  if (typeof bisectWays === "string") errors.bisectWays = bisectWays;
  else if (bisectWays !== (saved.bisect_ways ?? 3)) change.bisect_ways = bisectWays;

  const branches = parseBranches(form.targetBranches);
  const invalid = branches.filter((branch) => !BRANCH.test(branch) || branch.length > 255);
  if (branches.length === 0) errors.targetBranches = "Give at least one target branch.";
  else if (branches.length > MAX_BRANCHES)
    errors.targetBranches = `At most ${MAX_BRANCHES} target branches (${branches.length} given).`;
  else if (invalid.length > 0)
    errors.targetBranches =
      `Not a valid branch name: ${invalid.join(", ")} ` + "(no spaces and none of ~ ^ : ? * [ \\).";
  else if (new Set(branches).size !== branches.length)
    errors.targetBranches = "A target branch is listed twice.";
  else if (!sameList(branches, saved.target_branches ?? [])) change.target_branches = branches;

  if (form.strategy !== (saved.strategy ?? "batch")) change.strategy = form.strategy;

  const trainDepth = whole(form.trainDepth, "Train depth", 1, 8);
  if (typeof trainDepth === "string") errors.trainDepth = trainDepth;
  else if (trainDepth !== (saved.train_depth ?? 2)) change.train_depth = trainDepth;

  if (form.landing !== (saved.landing ?? "push")) change.landing = form.landing;
  if (form.skipTargetPipeline !== (saved.skip_target_pipeline ?? false))
    change.skip_target_pipeline = form.skipTargetPipeline;
  if (form.paused !== (saved.paused ?? false)) change.paused = form.paused;

  return { errors, change };
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

/** Whether the form differs from what it was loaded with (invalid edits count too). */
export function isDirty(form: ConfigForm, saved: ProjectConfig): boolean {
  const original = formOf(saved);
  return (Object.keys(original) as Field[]).some((field) =>
    field === "targetBranches"
      ? !sameList(parseBranches(form.targetBranches), parseBranches(original.targetBranches))
      : String(form[field]).trim() !== String(original[field]),
  );
}

const NAMES: Record<keyof ConfigChange, string> = {
  batch_size: "Batch size",
  batch_size_max: "Largest automatic batch",
  ci_timeout_minutes: "CI timeout",
  flaky_retries: "Flaky retries",
  bisect_ways: "Bisection ways",
  target_branches: "Target branches",
  strategy: "Strategy",
  train_depth: "Train depth",
  landing: "Landing",
  skip_target_pipeline: "Skip target pipeline",
  paused: "Paused",
  labels: "Labels",
  trigger_label: "Trigger label",
};

/** "Batch size 8, Paused yes": what a save changed, in the saved config's words. */
export function describeSaved(change: ConfigChange, saved: ProjectConfig): string {
  return (Object.keys(change) as (keyof ConfigChange)[])
    .map((key) => {
      const value = saved[key as keyof ProjectConfig];
      const words =
        typeof value === "boolean"
          ? value
            ? "yes"
            : "no"
          : Array.isArray(value)
            ? value.join(", ")
            : key === "ci_timeout_minutes"
              ? `${String(value)} minutes`
              : String(value);
      return `${NAMES[key]} ${words}`;
    })
    .join(", ");
}
