import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { Session } from "../auth/session";
import type { AppConfig } from "../config";
import { MemoryStorage, fakeCognito, hostedConfig, passwordConfig } from "../test/cognito";
import { SignInPage, type SignInState } from "./SignInPage";

function renderSignIn(config: AppConfig, session: Session, state: SignInState = { from: "/projects/1/events" }) {
  const user = userEvent.setup();
  render(
    <MemoryRouter initialEntries={[{ pathname: "/sign-in", state }]}>
      <Routes>
        <Route path="/sign-in" element={<SignInPage config={config} session={session} />} />
        <Route path="/projects/1/events" element={<h1>Events page</h1>} />
      </Routes>
    </MemoryRouter>,
  );
  return user;
}

describe("SignInPage", () => {
  it("says so when the password is wrong, and stays", async () => {
    const cognito = fakeCognito();
    const session = new Session(passwordConfig, { storage: new MemoryStorage(), fetcher: cognito.fetcher });
    const user = renderSignIn(passwordConfig, session);
    await user.type(screen.getByLabelText("Username"), "alice");
    await user.type(screen.getByLabelText("Password"), "wrong");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Incorrect username or password.");
    expect(screen.getByRole("button", { name: "Sign in" })).toBeEnabled();
    expect(session.identity()).toBeNull();
    session.dispose();
  });

  it("signs in and goes where the user wanted to go", async () => {
    const cognito = fakeCognito();
    const session = new Session(passwordConfig, { storage: new MemoryStorage(), fetcher: cognito.fetcher });
    const user = renderSignIn(passwordConfig, session);
    await user.type(screen.getByLabelText("Username"), "alice");
    await user.type(screen.getByLabelText("Password"), "correct horse");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("heading", { name: "Events page" })).toBeInTheDocument();
    expect(session.identity()?.username).toBe("alice");
    session.dispose();
  });

  it("tells why the user is back here", () => {
    const session = new Session(passwordConfig, { storage: new MemoryStorage(), fetcher: fakeCognito().fetcher });
    renderSignIn(passwordConfig, session, { notice: "Your session has ended" });
    expect(screen.getByRole("status")).toHaveTextContent("Your session has ended");
    session.dispose();
  });

  it("offers Cognito's hosted pages when the deployment uses them", async () => {
    const navigate = vi.fn();
    const session = new Session(hostedConfig, {
      storage: new MemoryStorage(),
      fetcher: fakeCognito().fetcher,
      navigate,
      redirectUri: "https://dashboard.test/",
    });
    const user = renderSignIn(hostedConfig, session);
    expect(screen.queryByLabelText("Password")).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Sign in with Cognito" }));
    // The PKCE challenge is hashed asynchronously before the browser leaves.
    await waitFor(() => expect(navigate).toHaveBeenCalledTimes(1));
    expect(String(navigate.mock.calls[0]?.[0])).toMatch(/^https:\/\/auth\.test\/oauth2\/authorize\?/);
    expect(JSON.parse(window.sessionStorage.getItem("merge-assist.pkce") ?? "{}")).toMatchObject({
      returnTo: "/projects/1/events",
    });
    session.dispose();
  });
});
