/** What the signed-in user may do on a project, from `GET /me`: the same rules the API
 * enforces (`merge_assist/platform/access.py`), so the UI offers only what will be accepted. */
import { createContext, useContext } from "react";
import type { Me, Role } from "../api/client";

export const MeContext = createContext<Me | null>(null);

export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside <MeContext.Provider>");
  return me;
}

export function rolesOn(me: Me, projectId: number): Role[] {
  return me.projects[String(projectId)] ?? [];
}

export function isAdmin(me: Me): boolean {
  return me.groups.includes("admin");
}

export function canConfigure(me: Me, projectId: number): boolean {
  return isAdmin(me) || rolesOn(me, projectId).includes("project_owner");
}

export function canPrioritize(me: Me, projectId: number): boolean {
  return isAdmin(me) || rolesOn(me, projectId).includes("priority_manager");
}
