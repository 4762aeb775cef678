/** The frame around every signed-in page: the header (project, target branch, who is
 * signed in, the live indicator), the main navigation and the page itself. */
import { useEffect, useId, useState } from "react";
import {
  Link,
  Navigate,
  Outlet,
  useLocation,
  useMatch,
  useNavigate,
  useOutletContext,
  useSearchParams,
} from "react-router-dom";
import { unwrap, type ProjectView, type Role } from "../api/client";
import { EmptyState, ErrorState, Loading } from "../components/states";
import { useQuery } from "../hooks/useQuery";
import { canPrioritize, isAdmin, rolesOn, useMe } from "./access";
import { useApi, useLive } from "./context";
import { useLiveState } from "./live-hub";
import "./Layout.css";

const LAST_PROJECT_KEY = "merge-assist.last-project";

export interface ProjectsOutlet {
  projects: ProjectView[] | undefined;
  error: unknown;
  reload: () => void;
}

/** The projects the user may see, as the layout loaded them (and keeps live). */
export function useProjects(): ProjectsOutlet {
  return useOutletContext<ProjectsOutlet>();
}

const ROLE_LABELS: Record<Role, string> = {
  admin: "Admin",
  project_owner: "Project owner",
  priority_manager: "Priority manager",
  viewer: "Viewer",
};

function rememberProject(projectId: number): void {
  try {
    window.localStorage.setItem(LAST_PROJECT_KEY, String(projectId));
  } catch {
    // Private mode: the first project it is, next time.
  }
}

function lastProject(): number | null {
  try {
    const value = Number(window.localStorage.getItem(LAST_PROJECT_KEY));
    return Number.isInteger(value) && value > 0 ? value : null;
  } catch {
    return null;
  }
}

/** The project pages keep the target-branch choice as they link to one another. */
function withTarget(path: string, target: string | null): string {
  return target ? `${path}?target=${encodeURIComponent(target)}` : path;
}

export function Layout({ onSignOut }: { onSignOut: () => void | Promise<void> }) {
  const api = useApi();
  const me = useMe();
  const navigate = useNavigate();
  const location = useLocation();
  const [searchParams, setSearchParams] = useSearchParams();
  const projectMatch = useMatch("/projects/:projectId/*");
  const routeProject = projectMatch ? Number(projectMatch.params.projectId) : null;
  const target = searchParams.get("target");
  const projectSelectId = useId();
  const targetSelectId = useId();
  const [signingOut, setSigningOut] = useState(false);
  const [removed, setRemoved] = useState<{ id: number; name: string } | null>(null);

  const projects = useQuery(
    async () => unwrap(await api.GET("/api/v1/projects")),
    [api],
  );

  useLive(undefined, (message) => {
    if (message.type === "project") {
      projects.setData((current) =>
        current?.map((view) =>
          view.config.project_id === message.project_id ? { ...view, config: message.data } : view,
        ),
      );
    } else if (message.type === "project_removed") {
      const gone = projects.data?.find((view) => view.config.project_id === message.project_id);
      projects.setData((current) => current?.filter((view) => view.config.project_id !== message.project_id));
      setRemoved({ id: message.project_id, name: gone?.config.path ?? `Project ${message.project_id}` });
    }
  });

  useEffect(() => {
    if (routeProject !== null && Number.isInteger(routeProject)) rememberProject(routeProject);
  }, [routeProject]);

  const list = projects.data ?? [];
  const fallback = list.find((view) => view.config.project_id === lastProject()) ?? list[0];
  const navProjectId = routeProject ?? fallback?.config.project_id ?? null;
  const current = list.find((view) => view.config.project_id === navProjectId);
  const branches = current?.config.target_branches ?? [];

  const section = location.pathname.match(/^\/projects\/\d+\/(priority|config|events)\b/)?.[1];
  const onProjectPage = routeProject !== null;

  const changeProject = (value: string) => {
    if (!value) return;
    navigate(section ? `/projects/${value}/${section}` : `/projects/${value}`);
  };

  const changeTarget = (value: string) => {
    setSearchParams(
      (params) => {
        const next = new URLSearchParams(params);
        if (value) next.set("target", value);
        else next.delete("target");
        return next;
      },
      { replace: true },
    );
  };

  const roles = navProjectId !== null ? rolesOn(me, navProjectId) : [];
  const roleSummary = isAdmin(me)
    ? "Admin"
    : roles.length
      ? roles.map((role) => ROLE_LABELS[role]).join(", ")
      : "No role here";

  const base = navProjectId !== null ? `/projects/${navProjectId}` : null;
  const path = location.pathname;
  const isQueue = base !== null && (path === base || path.startsWith(`${base}/mrs/`) || path.startsWith(`${base}/batches/`));
  const links: { label: string; to: string; active: boolean }[] = [];
  if (base !== null) {
    links.push({ label: "Queue", to: withTarget(base, target), active: isQueue });
    if (canPrioritize(me, navProjectId as number)) {
      links.push({ label: "Priority", to: withTarget(`${base}/priority`, target), active: path === `${base}/priority` });
    }
    links.push({ label: "Config", to: withTarget(`${base}/config`, target), active: path === `${base}/config` });
    links.push({ label: "Events", to: withTarget(`${base}/events`, target), active: path === `${base}/events` });
  }
  links.push({ label: "Health", to: "/health", active: path === "/health" });

  const signOut = async () => {
    setSigningOut(true);
    try {
      await onSignOut();
    } finally {
      setSigningOut(false);
    }
  };

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="header">
        <div className="header-row">
          <Link to="/" className="brand">
            <span className="brand-mark" aria-hidden="true">
              ⇶
            </span>
            Merge Assist
          </Link>
          <div className="header-pickers">
            <div className="picker">
              <label htmlFor={projectSelectId}>Project</label>
              <select
                id={projectSelectId}
                value={routeProject !== null ? String(routeProject) : ""}
                onChange={(event) => changeProject(event.target.value)}
                disabled={!projects.data}
              >
                {routeProject === null && (
                  <option value="" disabled>
                    {projects.data ? "Choose a project" : "Loading…"}
                  </option>
                )}
                {routeProject !== null && !current && <option value={String(routeProject)}>Project {routeProject}</option>}
                {list.map((view) => (
                  <option key={view.config.project_id} value={String(view.config.project_id)}>
                    {view.config.path ?? `Project ${view.config.project_id}`}
                  </option>
                ))}
              </select>
            </div>
            {onProjectPage && (
              <div className="picker">
                <label htmlFor={targetSelectId}>Target branch</label>
                <select
                  id={targetSelectId}
                  value={target ?? (branches.length === 1 ? (branches[0] ?? "") : "")}
                  onChange={(event) => changeTarget(event.target.value)}
                  disabled={branches.length === 0}
                >
                  {branches.length !== 1 && <option value="">All branches</option>}
                  {target && !branches.includes(target) && <option value={target}>{target}</option>}
                  {branches.map((branch) => (
                    <option key={branch} value={branch}>
                      {branch}
                    </option>
                  ))}
                </select>
              </div>
            )}
          </div>
          <div className="header-user">
            <LiveIndicator />
            <span className="user">
              <span className="user-name">{me.username}</span>
              <span className="user-roles">{roleSummary}</span>
            </span>
            <button type="button" className="button button-small" onClick={() => void signOut()} disabled={signingOut}>
              Sign out
            </button>
          </div>
        </div>
        <nav aria-label="Main" className="nav">
          <ul>
            {links.map((link) => (
              <li key={link.label}>
                <Link to={link.to} className="nav-link" aria-current={link.active ? "page" : undefined}>
                  {link.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" className="main" tabIndex={-1}>
        {/* The project's queue board says so itself. */}
        {removed !== null && location.pathname !== `/projects/${removed.id}` && (
          <div className="banner banner-warn" role="alert">
            <span>{removed.name} was disconnected from Merge Assist; its queue is gone.</span>
            <button type="button" className="button button-small" onClick={() => setRemoved(null)}>
              Dismiss
            </button>
          </div>
        )}
        <Outlet context={{ projects: projects.data, error: projects.error, reload: projects.reload } satisfies ProjectsOutlet} />
      </main>
    </div>
  );
}

function LiveIndicator() {
  const state = useLiveState();
  const open = state === "open";
  return (
    <span className={`live ${open ? "live-open" : "live-closed"}`} role="status" title={open ? "Updates arrive as they happen" : "Live updates are paused; reconnecting"}>
      <span className="live-dot" aria-hidden="true" />
      {open ? "Live" : "Reconnecting…"}
    </span>
  );
}

/** `/`: the first project's queue, or why there is none. */
export function HomeRedirect() {
  const { projects, error, reload } = useProjects();
  if (error) return <ErrorState error={error} onRetry={reload} title="Projects could not be loaded" />;
  if (!projects) return <Loading what="projects" />;
  const first = projects[0];
  if (!first) {
    return (
      <div className="page">
        <h1>Queue</h1>
        <EmptyState title="No projects yet">
          Merge Assist starts queueing a GitLab project once an admin connects it (with{" "}
          <code>merge-assist connect</code> or <code>POST /api/v1/projects</code>). Ask an admin to
          connect yours, or to give you a role on one that is connected.
        </EmptyState>
      </div>
    );
  }
  return <Navigate to={`/projects/${first.config.project_id}`} replace />;
}

export function NotFoundPage() {
  return (
    <div className="page">
      <h1>Page not found</h1>
      <EmptyState title="There is nothing at this address">
        <Link to="/">Go to the queue</Link>
      </EmptyState>
    </div>
  );
}
