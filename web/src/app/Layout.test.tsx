import { screen, within } from "@testing-library/react";
import { Route } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { projectView } from "../test/shell-fixtures";
import { meWith, renderPage } from "../test/render";
import { Layout } from "./Layout";

const projects = [
  projectView({ target_branches: ["main", "release"] }),
  { ...projectView({ project_id: 2, path: "demo/api" }) },
];

function renderLayout(me = meWith({ 1: ["viewer"] }), url = "/projects/1", onSignOut = vi.fn()) {
  const page = renderPage(<Layout onSignOut={onSignOut} />, {
    path: "/",
    url,
    me,
    routes: { "GET /projects": projects },
    extraRoutes: (
      <Route element={<Layout onSignOut={onSignOut} />}>
        <Route path="/projects/:projectId" element={<p>Board page</p>} />
        <Route path="/projects/:projectId/events" element={<p>Events page</p>} />
      </Route>
    ),
  });
  return { ...page, onSignOut };
}

describe("Layout", () => {
  it("hides Priority from a viewer", async () => {
    renderLayout(meWith({ 1: ["viewer"] }));
    const nav = screen.getByRole("navigation", { name: "Main" });
    expect(within(nav).getByRole("link", { name: "Queue" })).toBeInTheDocument();
    expect(within(nav).queryByRole("link", { name: "Priority" })).not.toBeInTheDocument();
    expect(within(nav).getByRole("link", { name: "Config" })).toBeInTheDocument();
    expect(within(nav).getByRole("link", { name: "Events" })).toBeInTheDocument();
    expect(within(nav).getByRole("link", { name: "Health" })).toBeInTheDocument();
    expect(screen.getByText("Viewer")).toBeInTheDocument();
  });

  it("shows Priority to a priority manager", () => {
    renderLayout(meWith({ 1: ["priority_manager"] }));
    const nav = screen.getByRole("navigation", { name: "Main" });
    expect(within(nav).getByRole("link", { name: "Priority" })).toHaveAttribute("href", "/projects/1/priority");
  });

  it("has the header's controls and keeps the target branch between pages", async () => {
    const page = renderLayout(meWith({ 1: ["viewer"] }, [], "bob"));
    const header = screen.getByRole("banner");
    expect(within(header).getByText("Merge Assist")).toBeInTheDocument();
    expect(within(header).getByText("bob")).toBeInTheDocument();
    expect(within(header).getByRole("status")).toHaveTextContent("Live");
    expect(screen.getByRole("link", { name: "Skip to content" })).toHaveAttribute("href", "#main");

    const project = await screen.findByRole("option", { name: "demo/api" });
    expect(project).toBeInTheDocument();
    const target = screen.getByLabelText("Target branch");
    expect(within(target).getAllByRole("option").map((option) => option.textContent)).toEqual([
      "All branches",
      "main",
      "release",
    ]);
    await page.user.selectOptions(target, "release");
    expect(screen.getByRole("link", { name: "Events" })).toHaveAttribute("href", "/projects/1/events?target=release");
    await page.user.click(screen.getByRole("link", { name: "Events" }));
    expect(screen.getByText("Events page")).toBeInTheDocument();
    expect(screen.getByLabelText("Target branch")).toHaveValue("release");

    await page.user.selectOptions(screen.getByLabelText("Project"), "2");
    expect(screen.getByRole("link", { name: "Events" })).toHaveAttribute("href", "/projects/2/events");

    await page.user.click(screen.getByRole("button", { name: "Sign out" }));
    expect(page.onSignOut).toHaveBeenCalled();
  });
});
