/** Why an MR is not ready or was rejected, in the words the API gives. */
import type { Schemas } from "../api/client";

export function Reasons({ reasons, tone = "muted" }: { reasons: Schemas["Reason"][] | undefined; tone?: "muted" | "bad" }) {
  if (!reasons || reasons.length === 0) return null;
  return (
    <ul className={`reasons reasons-${tone}`}>
      {reasons.map((reason) => (
        <li key={`${reason.code}:${reason.message}`} data-code={reason.code}>
          {reason.message}
        </li>
      ))}
    </ul>
  );
}
