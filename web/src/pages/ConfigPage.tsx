/** The config editor: a project's queue settings, checked as the API checks them, saved as
 * a change of only the edited fields, and kept honest when someone else saves meanwhile. */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { useParams } from "react-router-dom";
import { ApiError, unwrap, type ConfigChange, type ProjectConfig } from "../api/client";
import { canConfigure, useMe } from "../app/access";
import { useApi, useLive } from "../app/context";
import { RelativeTime } from "../components/RelativeTime";
import { ErrorState, Loading, describeError } from "../components/states";
import { useQuery } from "../hooks/useQuery";
import {
  check,
  describeSaved,
  formOf,
  isDirty,
  type ConfigForm,
  type Field,
  type FieldErrors,
} from "./config/form";
import "./ConfigPage.css";

type Outcome =
  | { kind: "saved"; summary: string }
  | { kind: "unchanged" }
  | { kind: "invalid"; message: string }
  | { kind: "failed"; message: string }
  | { kind: "conflict" };

const FIELD_ORDER: Field[] = [
  "batchSizing",
  "batchSize",
  "batchSizeMax",
  "strategy",
  "trainDepth",
  "landing",
  "ciTimeout",
  "flakyRetries",
  "bisectWays",
  "targetBranches",
  "skipTargetPipeline",
  "paused",
];

type SettingField =
  | "batchSizing"
  | "batchSize"
  | "batchSizeMax"
  | "strategy"
  | "trainDepth"
  | "landing"
  | "ciTimeout"
  | "flakyRetries"
  | "bisectWays";
type Setting = { field: SettingField; label: string; help: string } & (
  | { min: number; max: number }
  | { options: [string, string][] }
);

type CheckField = "skipTargetPipeline" | "paused";

/** The checkboxes, after target branches. */
const CHECKS: { field: CheckField; label: string; help: string }[] = [
  {
    field: "skipTargetPipeline",
    label: "Skip target pipeline",
    help:
      "With push landing, the landing push tells GitLab not to test again the tree that " +
      "just passed (ci.skip). Leave it off if you deploy from the target branch's pipeline.",
  },
  { field: "paused", label: "Paused", help: "Running batches finish; no new batch starts." },
];

/** The number and select fields, in the form's order (target branches and the checkboxes
 * follow). */
const SETTINGS: Setting[] = [
  {
    field: "batchSizing",
    label: "Batch sizing",
    help:
      "Fixed tests batches of the batch size; automatic sizes each batch for how often the " +
      "branch's recent batches failed (larger when they pass, smaller when they fail).",
    options: [
      ["fixed", "Fixed"],
      ["auto", "Automatic"],
    ],
  },
  {
    field: "batchSize",
    label: "Batch size",
    help: "How many queued MRs are tested together in one pipeline, with fixed sizing (1–50).",
    min: 1,
    max: 50,
  },
  {
    field: "batchSizeMax",
    label: "Largest automatic batch",
    help: "The most MRs automatic sizing puts in one batch (2–50).",
    min: 2,
    max: 50,
  },
  {
    field: "strategy",
    label: "Strategy",
    help:
      "Batch tests several MRs in one pipeline and bisects a red batch; " +
      "serial tests and lands one MR at a time; " +
      "train tests several batches at once, each on top of the one ahead.",
    options: [
      ["batch", "Batch"],
      ["serial", "Serial"],
      ["train", "Train"],
    ],
  },
  {
    field: "trainDepth",
    label: "Train depth",
    help:
      "With the train strategy: how many batches are tested at once, each on top of the " +
      "one ahead (1–8).",
    min: 1,
    max: 8,
  },
  {
    field: "landing",
    label: "Landing",
    help:
      "Push puts the tested commit on the target branch itself; " +
      "merge-each merges every MR of a green batch through GitLab.",
    options: [
      ["push", "Push"],
      ["merge-each", "Merge each"],
    ],
  },
  {
    field: "ciTimeout",
    label: "CI timeout (minutes)",
    help: "How long a batch's pipeline may run before the batch counts as failed (1–1440).",
    min: 1,
    max: 1440,
  },
  {
    field: "flakyRetries",
    label: "Flaky retries",
    help: "How many times a red pipeline is retried before its MRs are blamed (0–3).",
    min: 0,
    max: 3,
  },
  {
    field: "bisectWays",
    label: "Bisection ways",
    help:
      "How many parts each round of a red batch's bisection cuts the suspects into; the " +
      "prefix ending at each cut is tested at once. 2 is one pipeline a round (2–8).",
    min: 2,
    max: 8,
  },
];

export function ConfigPage() {
  const projectId = Number(useParams().projectId);
  // Edits belong to the project they were made on.
  return <ConfigEditor key={projectId} projectId={projectId} />;
}

function ConfigEditor({ projectId }: { projectId: number }) {
  const api = useApi();
  const me = useMe();
  const editable = canConfigure(me, projectId);
  const idPrefix = useId();
  const fieldId = (field: Field) => `${idPrefix}-${field}`;

  const query = useQuery(
    () =>
      api
        .GET("/api/v1/projects/{project_id}", { params: { path: { project_id: projectId } } })
        .then(unwrap),
    [api, projectId],
  );

  const [saved, setSaved] = useState<ProjectConfig | null>(null);
  const [form, setForm] = useState<ConfigForm | null>(null);
  const [attempted, setAttempted] = useState(false);
  const [saving, setSaving] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [changedElsewhere, setChangedElsewhere] = useState(false);
  const resetOnLoad = useRef(true);

  const adopt = (config: ProjectConfig) => {
    setSaved(config);
    setForm(formOf(config));
    setAttempted(false);
    setChangedElsewhere(false);
  };

  useEffect(() => {
    if (query.data && resetOnLoad.current) {
      resetOnLoad.current = false;
      adopt(query.data.config);
    }
  }, [query.data]);

  const reload = () => {
    resetOnLoad.current = true;
    setOutcome(null);
    query.reload();
  };

  const dirty = form !== null && saved !== null && isDirty(form, saved);

  useLive(projectId, (message) => {
    if (message.type !== "project" || !saved) return;
    const incoming = message.data;
    // Our own save comes back over the socket too; it is already shown.
    if ((incoming.version ?? 0) <= (saved.version ?? 0)) return;
    if (dirty) setChangedElsewhere(true);
    else {
      adopt(incoming);
      setOutcome(null);
    }
  });

  // Leaving with unsaved edits loses them; the browser asks first.
  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  if (!saved || !form) {
    return (
      <div className="page config-page">
        <h1>Config</h1>
        {query.error ? (
          <ErrorState error={query.error} onRetry={reload} title="The config could not be loaded" />
        ) : (
          <Loading what="the config" />
        )}
      </div>
    );
  }

  const checked = check(form, saved);
  const errors: FieldErrors = attempted ? checked.errors : {};

  const update = <K extends Field>(field: K, value: ConfigForm[K]) => {
    setForm((current) => current && { ...current, [field]: value });
    if (outcome?.kind !== "conflict") setOutcome(null);
  };
  /** What a number or select field takes from the form: its id, value, error and setter. */
  const bind = <K extends SettingField>(field: K) => ({
    id: fieldId(field),
    value: form[field],
    error: errors[field],
    onChange: (value: string) => update(field, value as ConfigForm[K]),
  });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (saving || !editable) return;
    setAttempted(true);
    const firstInvalid = FIELD_ORDER.find((field) => checked.errors[field]);
    if (firstInvalid) {
      setOutcome({ kind: "invalid", message: "Fix the highlighted fields; nothing was saved." });
      document.getElementById(fieldId(firstInvalid))?.focus();
      return;
    }
    const change: ConfigChange = checked.change;
    if (Object.keys(change).length === 0) {
      setOutcome({ kind: "unchanged" });
      return;
    }
    setSaving(true);
    setOutcome(null);
    try {
      const result = await api
        .PUT("/api/v1/projects/{project_id}/config", {
          params: { path: { project_id: projectId } },
          body: change,
        })
        .then(unwrap);
      adopt(result);
      query.setData((view) => view && { ...view, config: result });
      setOutcome({ kind: "saved", summary: describeSaved(change, result) });
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) setOutcome({ kind: "conflict" });
      else setOutcome({ kind: "failed", message: describeError(error) });
    } finally {
      setSaving(false);
    }
  };

  const reset = () => {
    setForm(formOf(saved));
    setAttempted(false);
    setOutcome(null);
  };

  return (
    <div className="page config-page">
      <div className="config-heading">
        <h1>Config</h1>
        <p className="config-lede">
          Queue settings for <strong>{saved.path ?? `project ${saved.project_id}`}</strong>. The
          next batch uses them; a running batch keeps the settings it started with.
          {saved.updated_at && (
            <>
              {" "}
              Last changed <RelativeTime value={saved.updated_at} />.
            </>
          )}
        </p>
      </div>

      {!editable && (
        <div className="notice tone-info" role="note">
          <strong>Read-only.</strong> Only project owners and admins can change the config; ask
          one of them if a setting should change.
        </div>
      )}

      {changedElsewhere && (
        <div className="config-banner notice tone-warn" role="alert">
          <span>
            <strong>This config was changed by someone else.</strong> Reload to see their
            version; your unsaved edits will be discarded.
          </span>
          <button type="button" className="button" onClick={reload}>
            Reload
          </button>
        </div>
      )}

      <form className="config-form" onSubmit={submit} noValidate aria-label="Queue settings">
        <fieldset disabled={!editable || saving} className="config-fields">
          <legend className="visually-hidden">Queue settings</legend>
          {SETTINGS.map((setting) =>
            "options" in setting ? (
              <SelectField key={setting.field} {...bind(setting.field)} {...setting} />
            ) : (
              <NumberField key={setting.field} {...bind(setting.field)} {...setting} />
            ),
          )}
          <Labelled
            id={fieldId("targetBranches")}
            label="Target branches"
            help="The branches this project queues for, one per line or separated by commas (1–20)."
            error={errors.targetBranches}
          >
            {(described) => (
              <textarea
                id={fieldId("targetBranches")}
                rows={3}
                spellCheck={false}
                autoCapitalize="off"
                value={form.targetBranches}
                aria-invalid={errors.targetBranches ? true : undefined}
                aria-describedby={described}
                onChange={(event) => update("targetBranches", event.target.value)}
              />
            )}
          </Labelled>
          {CHECKS.map(({ field, label, help }) => (
            <div key={field} className="config-field config-check">
              <input
                id={fieldId(field)}
                type="checkbox"
                checked={form[field]}
                aria-describedby={`${fieldId(field)}-help`}
                onChange={(event) => update(field, event.target.checked)}
              />
              <div>
                <label htmlFor={fieldId(field)}>{label}</label>
                <p id={`${fieldId(field)}-help`} className="config-help">
                  {help}
                </p>
              </div>
            </div>
          ))}
        </fieldset>

        {editable && (
          <div className="config-actions">
            <button type="submit" className="button button-primary" disabled={saving}>
              {saving ? "Saving…" : "Save changes"}
            </button>
            <button type="button" className="button" onClick={reset} disabled={!dirty || saving}>
              Reset
            </button>
            {dirty && <span className="config-dirty">Unsaved changes</span>}
          </div>
        )}

        <OutcomeMessage outcome={outcome} onReload={reload} />
      </form>
    </div>
  );
}

function OutcomeMessage({ outcome, onReload }: { outcome: Outcome | null; onReload: () => void }) {
  const calm = outcome?.kind === "saved" || outcome?.kind === "unchanged";
  // The status region stays mounted so screen readers announce "Saved" when it appears.
  return (
    <>
      <div role="status" className={calm ? "config-banner notice tone-ok" : "config-status-idle"}>
        {outcome?.kind === "saved" && (
          <>
            <strong>Saved</strong>
            <span>{outcome.summary}.</span>
          </>
        )}
        {outcome?.kind === "unchanged" && <span>Nothing to save: no field was changed.</span>}
      </div>
      {outcome?.kind === "invalid" && (
        <div role="alert" className="config-banner notice tone-bad">
          {outcome.message}
        </div>
      )}
      {outcome?.kind === "failed" && (
        <div role="alert" className="config-banner notice tone-bad">
          <span>
            <strong>Not saved.</strong> {outcome.message}
          </span>
        </div>
      )}
      {outcome?.kind === "conflict" && (
        <div role="alert" className="config-banner notice tone-warn">
          <span>
            <strong>The config changed meanwhile.</strong> Someone saved it after you opened
            it. Reload to see their version, then make your change again.
          </span>
          <button type="button" className="button" onClick={onReload}>
            Reload
          </button>
        </div>
      )}
    </>
  );
}

function Labelled({
  id,
  label,
  help,
  error,
  children,
}: {
  id: string;
  label: string;
  help: string;
  error?: string;
  children: (describedBy: string) => ReactNode;
}) {
  const described = error ? `${id}-error ${id}-help` : `${id}-help`;
  return (
    <div className={`config-field${error ? " config-field-invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children(described)}
      {error && (
        <p id={`${id}-error`} className="config-error">
          {error}
        </p>
      )}
      <p id={`${id}-help`} className="config-help">
        {help}
      </p>
    </div>
  );
}

/** What every bound field takes: see `bind` in ConfigEditor. */
interface FieldProps {
  id: string;
  label: string;
  help: string;
  value: string;
  error?: string;
  onChange: (value: string) => void;
}

function NumberField(props: FieldProps & { min: number; max: number }) {
  return (
    <Labelled id={props.id} label={props.label} help={props.help} error={props.error}>
      {(described) => (
        <input
          id={props.id}
          type="number"
          inputMode="numeric"
          step={1}
          min={props.min}
          max={props.max}
          value={props.value}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={described}
          onChange={(event) => props.onChange(event.target.value)}
        />
      )}
    </Labelled>
  );
}

function SelectField(props: FieldProps & { options: [string, string][] }) {
  return (
    <Labelled id={props.id} label={props.label} help={props.help} error={props.error}>
      {(described) => (
        <select
          id={props.id}
          value={props.value}
          aria-describedby={described}
          onChange={(event) => props.onChange(event.target.value)}
        >
          {props.options.map(([value, text]) => (
            <option key={value} value={value}>
              {text}
            </option>
          ))}
        </select>
      )}
    </Labelled>
  );
}
