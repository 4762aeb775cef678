import { useEffect } from "react";

/** Names the browser tab after the page, so a wall of tabs stays tellable apart. */
export function useDocumentTitle(title: string | null): void {
  useEffect(() => {
    document.title = title ? `${title} · Merge Assist` : "Merge Assist";
  }, [title]);
}
