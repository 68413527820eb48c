CREATE TABLE "two_factor_email_codes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" integer NOT NULL,
	"purpose" text NOT NULL,
	"challenge_id" uuid,
	"code_hash" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "two_factor_challenges" ADD COLUMN "first_factor" text;--> statement-breakpoint
ALTER TABLE "two_factor_email_codes" ADD CONSTRAINT "two_factor_email_codes_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "two_factor_email_codes" ADD CONSTRAINT "two_factor_email_codes_challenge_id_two_factor_challenges_id_fk" FOREIGN KEY ("challenge_id") REFERENCES "public"."two_factor_challenges"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "two_factor_email_codes_user_id_idx" ON "two_factor_email_codes" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "two_factor_email_codes_challenge_id_idx" ON "two_factor_email_codes" USING btree ("challenge_id");--> statement-breakpoint
CREATE INDEX "two_factor_email_codes_expires_at_idx" ON "two_factor_email_codes" USING btree ("expires_at");